"""Packaging, docs site and CI configuration: what `python -m build`, nbdev_docs (quarto) and GitHub Actions read.

None of these tests needs quarto; the sdist test needs the `build` package (a dev requirement) and is skipped without it.
"""
import configparser
import fnmatch
import re
import runpy
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
CFG = configparser.ConfigParser(delimiters=["="])
CFG.read(ROOT / "settings.ini", encoding="utf-8")
S = CFG["DEFAULT"]
DATASETS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / S["lib_path"] / "datasets").glob("*.csv"))
DOCS_URL = S["doc_host"].rstrip("/") + S["doc_baseurl"].rstrip("/") + "/"


def _yaml(path):
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} should hold a YAML mapping, got {type(data).__name__}"
    return data


def _on(workflow: dict) -> dict:
    "A workflow's triggers (PyYAML reads the bare key `on` as True)."
    on = workflow.get("on", workflow.get(True))
    return {k: None for k in on} if isinstance(on, list) else dict(on or {})


def _steps(workflow: dict) -> list:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def _notebooks_on_disk() -> set:
    return {p.relative_to(NBS).as_posix() for d in (NBS, NBS / "tutorials") for p in d.glob("*.ipynb")}


def _sidebar_entries(contents: list) -> list:
    out = []
    for item in contents:
        if isinstance(item, str): out.append(item)
        elif isinstance(item, dict):
            if "href" in item: out.append(item["href"])
            out += _sidebar_entries(item.get("contents", []))
        else: raise AssertionError(f"sidebar entry {item!r} is neither a file name nor a section")
    return out


def _setup_kwargs() -> dict:
    "The keyword arguments setup.py passes to setuptools.setup, without building anything."
    import setuptools
    seen = {}
    orig = setuptools.setup
    setuptools.setup = lambda **kw: seen.update(kw)
    try: runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    finally: setuptools.setup = orig
    return seen


# docs site


@pytest.mark.parametrize("name", ["_quarto.yml", "nbdev.yml", "sidebar.yml"])
def test_docs_yaml_files_parse(name):
    _yaml(NBS / name)


def test_quarto_yml_is_nbdev_website():
    q = _yaml(NBS / "_quarto.yml")
    assert q["project"]["type"] == "website"
    assert set(q["metadata-files"]) >= {"nbdev.yml", "sidebar.yml"}
    css = q["format"]["html"]["css"]
    assert (NBS / css).is_file(), f"_quarto.yml names the stylesheet {css}, which is not in nbs/"


def test_nbdev_yml_matches_settings():
    "nbdev_docs rewrites nbdev.yml from settings.ini: the committed file must say the same."
    n = _yaml(NBS / "nbdev.yml")
    assert n["project"]["output-dir"] == S["doc_path"]
    w = n["website"]
    assert w["title"] == S["title"] and w["description"] == S["description"]
    assert w["site-url"] == S["doc_host"] + S["doc_baseurl"] and w["site-url"] + "/" == DOCS_URL
    assert w["repo-url"] == S["git_url"] and w["repo-branch"] == S["branch"]
    assert DOCS_URL == "https://khannay.github.io/paramfittorchdemo/"


def test_sidebar_names_every_notebook_and_nothing_else():
    entries = _sidebar_entries(_yaml(NBS / "sidebar.yml")["website"]["sidebar"]["contents"])
    assert len(entries) == len(set(entries)), f"the sidebar names a notebook twice: {entries}"
    on_disk = _notebooks_on_disk()
    missing, extra = on_disk - set(entries), set(entries) - on_disk
    assert not missing, f"notebooks missing from nbs/sidebar.yml: {sorted(missing)}"
    assert not extra, f"nbs/sidebar.yml names notebooks that do not exist: {sorted(extra)}"


def test_sidebar_order_index_modules_tutorials():
    entries = _sidebar_entries(_yaml(NBS / "sidebar.yml")["website"]["sidebar"]["contents"])
    modules = [e for e in entries if re.match(r"^\d+[a-z]?_.*\.ipynb$", e)]  # 02_solvers, then its package's files 02a_explicit, ...
    tutorials = [e for e in entries if e.startswith("tutorials/")]
    assert entries == ["index.ipynb"] + modules + tutorials
    assert modules == sorted(modules, key=lambda e: (int(re.match(r"\d+", e)[0]), e.split("_")[0]))


def test_custom_sidebar_is_kept():
    "With custom_sidebar = False, nbdev_docs would overwrite the hand-ordered sidebar.yml."
    assert S.getboolean("custom_sidebar")


# workflows


def test_test_workflow_runs_ci_script():
    w = _yaml(ROOT / ".github" / "workflows" / "test.yaml")
    assert {"push", "pull_request"} <= set(_on(w))
    assert any("ubuntu" in str(job["runs-on"]) for job in w["jobs"].values())
    steps = _steps(w)
    assert any(str(s.get("uses", "")).startswith("actions/setup-python") for s in steps)
    assert any(re.search(r"(^|\s)(bash\s+)?\.ci/run(\s|$)", str(s.get("run", ""))) for s in steps), "no step runs .ci/run"
    setup = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert str(setup["with"]["python-version"]) == S["min_python"], "CI should test the declared Python floor"


def test_deploy_workflow_builds_with_quarto_and_publishes():
    w = _yaml(ROOT / ".github" / "workflows" / "deploy.yaml")
    steps = _steps(w)
    uses = [str(s.get("uses", "")) for s in steps]
    runs = " ".join(str(s.get("run", "")) for s in steps)
    assert any(u.startswith(("quarto-dev/quarto-actions", "fastai/workflows/quarto-ghp")) for u in uses), uses
    assert "fastai/workflows/quarto-ghp" in " ".join(uses) or "nbdev_docs" in runs or "quarto render" in runs
    assert any(u.startswith(("actions/deploy-pages", "fastai/workflows/quarto-ghp", "peaceiris/actions-gh-pages")) for u in uses)


def test_ci_never_needs_quarto():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "quarto" not in ci and "nbdev_docs" not in ci and "nbdev_preview" not in ci
    test = (ROOT / ".github" / "workflows" / "test.yaml").read_text(encoding="utf-8")
    assert "quarto" not in test


def test_ci_builds_and_installs_the_distributions():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for needle in ("python -m build", "twine check", 'pip install -q torch==2.13.0 "$wheel"', 'pip install -q torch==2.13.0 "$sdist"',
                   "twine check --strict"):
        assert needle in ci, f".ci/run lacks {needle!r}"
    assert re.search(r'paramfittorchdemo-demo"? --out "\$pkg_tmp/', ci), ".ci/run should run the installed demo into a temporary folder"
    assert ci.index("python -m build") > ci.index('eval "$test_cmd"'), "packaging runs after the tests"
    assert '"$wheel"' in ci and "-e \"$wheel\"" not in ci, "the wheel is installed as it is, not editable"


# packaging


def test_manifest_ships_settings_and_datasets():
    lines = [l.split() for l in (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines() if l.strip() and not l.startswith("#")]
    included = [pat for cmd, *pats in lines if cmd == "include" for pat in pats]
    def shipped(path): return any(fnmatch.fnmatch(path, pat) for pat in included)
    assert DATASETS, "no dataset found under the package's datasets/ folder"
    for f in ["settings.ini", "README.md", "LICENSE", "pyproject.toml", *DATASETS]:
        assert shipped(f), f"MANIFEST.in does not include {f}"


def test_setup_extras_cover_every_requirements_key():
    kw = _setup_kwargs()
    keys = {k[:-len("_requirements")] for k in S if k.endswith("_requirements") and k != "pip_requirements"}
    assert keys >= {"dev", "discovery", "logging", "distributed"}
    assert set(kw["extras_require"]) == keys
    for k in keys: assert kw["extras_require"][k] == S[f"{k}_requirements"].split()
    assert kw["package_data"][S["lib_path"] + ".datasets"] == ["*.csv"]
    assert S["lib_path"] + ".datasets" in kw["packages"]


def test_setup_without_settings_ini_says_what_is_missing(tmp_path):
    (tmp_path / "setup.py").write_text((ROOT / "setup.py").read_text(encoding="utf-8"), encoding="utf-8")
    r = subprocess.run([sys.executable, "setup.py", "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0
    assert "needs settings.ini" in r.stderr and "MANIFEST.in" in r.stderr, r.stderr


def test_version_floors_are_the_tested_versions():
    "Declared support = tested support: Python min_python everywhere, torch's floor = the CI pin's minor version."
    kw = _setup_kwargs()
    floor = S["min_python"]
    assert kw["python_requires"] == ">=" + floor
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^requires-python\s*=\s*">=' + re.escape(floor) + '"', pyproject, re.M), "pyproject.toml disagrees with min_python"
    py_classifiers = [c.rsplit(" :: ", 1)[1] for c in kw["classifiers"] if re.match(r"Programming Language :: Python :: 3\.\d+$", c)]
    assert py_classifiers == [floor], f"classifiers claim Python {py_classifiers}; CI tests only {floor}"
    torch_req = [r for r in kw["install_requires"] if re.match(r"torch\b", r)]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    pin = re.search(r"torch==(\d+)\.(\d+)\.\d+", ci)
    assert torch_req == [f"torch>={pin[1]}.{pin[2]}"], f"{torch_req} should be the floor CI tests, torch>={pin[1]}.{pin[2]}"
    # a marker keyed to a Python older than the floor is dead weight, and a sign the floor moved without it
    for k in S:
        if not k.endswith("requirements"): continue
        for m in re.finditer(r'python_version\s*[<>=!]+\s*"(\d+)\.(\d+)"', S[k]):
            assert (int(m[1]), int(m[2])) > tuple(map(int, floor.split("."))), f"{k} has a marker for Python {m[1]}.{m[2]}, below the floor"


def test_readme_links_docs_and_states_tested_versions():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"({DOCS_URL})" in readme, f"README.md does not link the docs site {DOCS_URL}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    pin = re.search(r"torch==(\d+\.\d+)\.\d+", ci)[1]
    m = re.search(r"\*\*Tested versions\*\*: Python (\d+\.\d+) with PyTorch (\d+\.\d+) \(the CPU build\)", readme)
    assert m, "README.md does not state the tested versions"
    assert (m[1], m[2]) == (S["min_python"], pin)
    assert "GPU machine" in readme
    assert "Python 3.10 or newer" not in readme


def test_sdist_contains_settings_and_datasets(tmp_path):
    "Built from a copy of the tree without egg-info: setuptools adds the files an old SOURCES.txt lists, hiding a MANIFEST.in gap."
    pytest.importorskip("build")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "dist", ".git", ".ci-venv", ".venv", "_proc", "_docs",
                                                             "__pycache__", "nbs", "benchmarks", "*.pt"))
    r = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as tf: names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for f in ["settings.ini", "setup.py", "README.md", "LICENSE", "pyproject.toml", *DATASETS]:
        assert f in names, f"the sdist lacks {f}"
