"""README.md is generated from nbs/index.ipynb; this test keeps the two in sync.

Regenerate after editing the notebook with:  python tests/test_readme.py --write
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render_readme(nb_path=ROOT / "nbs" / "index.ipynb") -> str:
    "Markdown of the index notebook: markdown cells as they are, visible code cells as python blocks."
    nb = json.loads(Path(nb_path).read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        src = "".join(cell["source"]).strip("\n")
        if cell["cell_type"] == "markdown":
            parts.append(src)
        elif cell["cell_type"] == "code":
            lines = src.splitlines()
            directives = [l for l in lines if l.startswith("#|")]
            if any(d.replace(" ", "") in ("#|hide", "#|include:false") for d in directives): continue
            code = "\n".join(l for l in lines if not l.startswith("#|")).strip("\n")
            if code: parts.append(f"```python\n{code}\n```")
    return "<!-- generated from nbs/index.ipynb by tests/test_readme.py; edit the notebook -->\n\n" + "\n\n".join(parts) + "\n"


def test_readme_matches_index_notebook():
    expected = render_readme()
    actual = (ROOT / "README.md").read_text(encoding="utf-8")
    assert actual == expected, "README.md is out of date: run `python tests/test_readme.py --write`"


def test_readme_has_the_two_setup_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "paramfittorchdemo-demo" in text and "pip install" in text
    assert 'pip install -e ".[dev]" && nbdev_test && pytest tests' in text


def test_ci_runs_the_readme_test_command():
    "CI installs the pinned torch with the package, then runs the README's test command line itself."
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -q torch==2.13.0 -e ".[dev]"' in ci
    assert "grep -m1 -E '^pip install .*nbdev_test && pytest tests' README.md" in ci and 'eval "$test_cmd"' in ci


if __name__ == "__main__" and "--write" in sys.argv:
    (ROOT / "README.md").write_text(render_readme(), encoding="utf-8")
    print("README.md written")
