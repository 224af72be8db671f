"""The documentation: the notebooks as rendered pages.

Quarto cannot run in every environment, so the docs are checked through the notebooks themselves:

* the tutorials (``nbs/tutorials/``) are committed with their executed outputs: each renders to HTML
  with nbconvert (no execution), every visible cell that should show something does, each figure of the
  notebook is an image in the page, and nothing failed;
* a module notebook (``nbs/06_plotting.ipynb``, committed without outputs) is executed end to end with a
  Jupyter kernel and rendered, which proves the pages render with executed outputs;
* every tutorial carries a correct "Open In Colab" badge and the hidden Colab install cell, and the
  README links to every tutorial.

Committed notebooks pass through ``nbdev_clean``, which removes execution counts, so "executed" is judged
from the outputs: a cell that plots has an image, a cell that prints has printed text, a cell that ends in
an unsuppressed expression has its value, and no output is an error.
"""
import ast
import configparser
import copy
import html
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
TUTORIALS = sorted((NBS / "tutorials").glob("*.ipynb"))
# the module notebooks: the API pages, committed with their examples' outputs
MODULE_NBS = sorted(p for p in NBS.glob("[0-9][0-9]*_*.ipynb"))  # 02_solvers, and the files of its package: 02a_explicit, ...
# the module notebook executed end to end: small and fast (a few seconds), and it draws figures
EXECUTED_NB = NBS / "06_plotting.ipynb"

COLAB_BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_RE = re.compile(r"\[!\[(?P<alt>[^\]]*)\]\((?P<img>[^)\s]+)\)\]\((?P<link>[^)\s]+)\)")
PNG_IMG_RE = re.compile(r"<img\b[^>]*\bsrc=\"data:image/png;base64,")
# calls that draw a figure in these notebooks: pyplot, the library's plot_* functions, and .plot methods
PLOT_CALL_RE = re.compile(r"\bplt\.(plot|subplots|figure|scatter|hist|imshow|bar)\(|\bplot_\w+\(|\.plot(_\w+)?\(")


def _settings() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser()
    assert cfg.read(ROOT / "settings.ini", encoding="utf-8"), "settings.ini is missing"
    return cfg["DEFAULT"]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _directives(cell) -> set:
    "nbdev directives of a cell (`#| hide`, `#| eval: false`, ...), with spaces removed and lower-cased."
    return {re.sub(r"\s+", "", line[2:]).lower() for line in cell.source.splitlines() if line.startswith("#|")}


def _hidden(cell) -> bool:
    return bool(_directives(cell) & {"hide", "include:false"})


def _never_run(cell) -> bool:
    "Cells that are not executed when the docs are built (`#| eval: false`)."
    return "eval:false" in _directives(cell)


def _visible_code(nb):
    "(index, cell) of the code cells a reader of the docs sees and that the docs build executes."
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and not _hidden(c) and not _never_run(c)]


def _is_image(output) -> bool:
    return output.output_type in ("display_data", "execute_result") and "image/png" in output.get("data", {})


def _n_images(nb, cells=None) -> int:
    cells = nb.cells if cells is None else cells
    return sum(_is_image(o) for c in cells if c.cell_type == "code" for o in c.get("outputs", []))


def _errors(nb) -> list:
    "Error outputs, and tracebacks printed to a stream, as (cell index, text)."
    found = []
    for i, c in enumerate(nb.cells):
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            if o.output_type == "error":
                found.append((i, f"{o.get('ename')}: {o.get('evalue')}"))
            elif o.output_type == "stream" and "Traceback (most recent call last)" in o.get("text", ""):
                found.append((i, o.text[-300:]))
    return found


def _title(nb) -> str:
    for c in nb.cells:
        if c.cell_type == "markdown":
            for line in c.source.splitlines():
                if line.startswith("# "): return line[2:].strip()
    return None


def _draws(nb) -> bool:
    "Whether any visible code cell of the notebook draws a figure."
    return any(PLOT_CALL_RE.search(c.source) for _, c in _visible_code(nb))


def _docs_view(nb):
    "The notebook as the docs show it: `#| hide` cells (input and output) left out."
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and _hidden(c))]
    return nb


def _render_html(nb, out: Path) -> str:
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter().from_notebook_node(nb)
    out.write_text(body, encoding="utf-8")
    return body


def _missing_outputs(i, cell) -> list:
    "What an executed visible code cell should show but does not."
    outs = cell.get("outputs", [])
    kinds = {o.output_type for o in outs}
    problems = []
    code = "\n".join(l for l in cell.source.splitlines() if not l.startswith("#|"))
    shows_error = re.search(r"^\s*except\b", code, re.M) and "stdout" in {o.get("name") for o in outs}  # a refused call, printed
    if PLOT_CALL_RE.search(code) and not shows_error and not any(_is_image(o) for o in outs):
        problems.append(f"cell {i} draws a figure but has no image output")
    if re.search(r"\bprint\(", code) and not any(o.output_type == "stream" and o.name == "stdout" for o in outs):
        problems.append(f"cell {i} prints but has no printed output")
    try:
        tree = ast.parse(code)
    except SyntaxError:  # IPython magics or shell escapes: no judgement on the last expression
        return problems
    last = tree.body[-1] if tree.body else None
    # a final expression that is not a call (a name, attribute, tuple, ...) has a value, which Jupyter shows unless
    # `;` suppresses it; a final call may return None, so it is not judged
    shows_value = isinstance(last, ast.Expr) and not isinstance(last.value, ast.Call) and not code.rstrip().endswith(";")
    if shows_value and "execute_result" not in kinds:
        problems.append(f"cell {i} ends in an expression but its value is not shown")
    return problems


# ---------------------------------------------------------------------------------------------------------
# tutorials: committed with outputs, rendered without execution

def test_there_are_tutorials():
    assert TUTORIALS, "no notebooks in nbs/tutorials/"


@pytest.mark.parametrize("nb_path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_is_executed(nb_path):
    nb = _read(nb_path)
    assert not _errors(nb), f"{nb_path.name}: error outputs {_errors(nb)}"
    problems = [p for i, c in _visible_code(nb) for p in _missing_outputs(i, c)]
    assert not problems, f"{nb_path.name} is not (fully) executed: " + "; ".join(problems)
    assert any(c.get("outputs") for _, c in _visible_code(nb)), f"{nb_path.name} has no outputs: execute it before committing"
    if _draws(nb):
        assert _n_images(nb) >= 1, f"{nb_path.name} draws figures but has no image output: execute it before committing"


@pytest.mark.parametrize("nb_path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_renders_to_html(nb_path, tmp_path):
    nb = _read(nb_path)
    page = _docs_view(nb)
    out = tmp_path / f"{nb_path.stem}.html"
    body = _render_html(page, out)
    assert out.is_file() and out.stat().st_size > 10_000, f"{nb_path.name}: the HTML page is missing or nearly empty"
    n_fig = _n_images(page)
    n_img = len(PNG_IMG_RE.findall(body))
    assert n_img >= n_fig, f"{nb_path.name}: {n_fig} figures in the notebook but {n_img} PNG images in the HTML"
    if _draws(nb):
        assert n_img >= 1, f"{nb_path.name} draws figures but its HTML page has no PNG image"
    title = _title(nb)
    assert title, f"{nb_path.name} has no '# Title' markdown heading"
    assert re.search(r"<h1[^>]*>\s*" + re.escape(html.escape(title, quote=False)), body), \
        f"{nb_path.name}: the title {title!r} is not a heading of the HTML page"
    assert "Traceback (most recent call last)" not in body, \
        f"{nb_path.name}: the page shows a traceback"


def test_index_is_executed():
    "The home page (nbs/index.ipynb, also the README's source) shows what its examples print and draw."
    nb = _read(NBS / "index.ipynb")
    assert not _errors(nb), f"index.ipynb: error outputs {_errors(nb)}"
    problems = [p for i, c in _visible_code(nb) for p in _missing_outputs(i, c)]
    assert not problems, "index.ipynb is not (fully) executed: " + "; ".join(problems)
    shown = [c for _, c in _visible_code(nb) if c.source.strip()]
    assert shown and all(c.get("outputs") for c in shown), "index.ipynb: an example cell has no output: execute it before committing"
    if _draws(nb):
        assert _n_images(nb) >= 1, "index.ipynb draws a figure but has no image output"


# ---------------------------------------------------------------------------------------------------------
# module notebooks: the API pages, committed with the outputs of their examples

def test_there_are_module_notebooks():
    assert len(MODULE_NBS) >= 10, f"expected the module notebooks nbs/NN_*.ipynb, found {[p.name for p in MODULE_NBS]}"


@pytest.mark.parametrize("nb_path", MODULE_NBS, ids=lambda p: p.stem)
def test_module_notebook_reads_as_a_page(nb_path):
    nb = _read(nb_path)
    assert not _errors(nb), f"{nb_path.name}: error outputs {_errors(nb)}"
    # the page opens with its title: the first cell, or the one right after the `#| default_exp` cell
    first = nb.cells[1] if nb.cells[0].source.strip().startswith("#| default_exp") else nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), \
        f"{nb_path.name}: the page does not open with a '# Title' cell (first, or right after #| default_exp)"
    assert re.search(r"^> \S", first.source, re.M), f"{nb_path.name}: the first cell has no '> summary' line"
    examples = [(i, c) for i, c in _visible_code(nb) if not _directives(c) & {"export", "exporti"}]  # definitions show nothing
    problems = [p for i, c in examples for p in _missing_outputs(i, c)]
    assert not problems, f"{nb_path.name} is not (fully) executed: " + "; ".join(problems)
    shown = [c for _, c in examples if c.source.strip()]
    with_output = [c for c in shown if c.get("outputs")]
    assert len(with_output) >= max(1, len(shown)//3), \
        f"{nb_path.name}: {len(with_output)} of {len(shown)} visible example cells show an output: execute it before committing"
    if any(PLOT_CALL_RE.search(c.source) for _, c in examples):
        assert _n_images(nb) >= 1, f"{nb_path.name} draws figures but has no image output: execute it before committing"


def _public_methods(source: str) -> dict:
    "Public classes defined in exported code, each with its public methods and properties."
    out = {}
    for cell in source.split("\n# %% cell\n"):
        code = "\n".join(l for l in cell.splitlines() if not l.startswith("#|"))
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                out[node.name] = [f.name for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                                  and not f.name.startswith("_")]
    return out


@pytest.mark.parametrize("nb_path", MODULE_NBS, ids=lambda p: p.stem)
def test_module_notebook_shows_the_api(nb_path):
    "No show_doc is hidden, and every public class with public methods shows at least one of them with a visible show_doc."
    nb = _read(nb_path)
    exported = "\n# %% cell\n".join(c.source for c in nb.cells if c.cell_type == "code" and "export" in _directives(c))
    hidden = [c.source for c in nb.cells if c.cell_type == "code" and _hidden(c) and "show_doc(" in c.source]
    assert not hidden, f"{nb_path.name}: hidden show_doc cells, which the API page would leave out: {hidden}"
    visible = "\n".join(c.source for _, c in _visible_code(nb))
    undocumented = [name for name, methods in _public_methods(exported).items()
                    if methods and not re.search(rf"show_doc\(\s*{name}\.", visible)]
    assert not undocumented, f"{nb_path.name}: the methods of {undocumented} have no visible show_doc(Class.method)"


# ---------------------------------------------------------------------------------------------------------
# a module notebook: executed here, executed here with a Jupyter kernel, then rendered

def test_module_notebook_executes_and_renders(tmp_path, monkeypatch):
    pytest.importorskip("nbconvert")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    nb = _read(EXECUTED_NB)
    kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        pytest.skip(f"no Jupyter kernel {kernel!r} is available (install ipykernel)")
    if Path(spec.argv[0]).name.startswith("python") and importlib.util.find_spec("ipykernel") is None:
        pytest.skip(f"the Jupyter kernel {kernel!r} runs this Python, which has no ipykernel")
    from nbconvert.preprocessors import ExecutePreprocessor

    # as nbdev_test does: leave out the cells flagged with settings.ini's tst_flags, and `#| eval: false`
    flags = set(_settings().get("tst_flags", "").split())
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and (_never_run(c) or _directives(c) & flags))]
    # CI exports MPLBACKEND=Agg, which the kernel would inherit and then draw no figures; use the inline backend
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    ExecutePreprocessor(timeout=120, kernel_name=kernel).preprocess(nb, {"metadata": {"path": str(NBS)}})

    assert not _errors(nb), f"{EXECUTED_NB.name}: error outputs {_errors(nb)}"
    not_run = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip() and c.get("execution_count") is None]
    assert not not_run, f"{EXECUTED_NB.name}: code cells {not_run} were not executed"
    n_fig = _n_images(nb)
    assert n_fig >= 1, f"{EXECUTED_NB.name} executed without a single figure output"
    page = _docs_view(nb)
    out = tmp_path / f"{EXECUTED_NB.stem}.html"
    body = _render_html(page, out)
    assert out.is_file() and out.stat().st_size > 10_000
    n_img = len(PNG_IMG_RE.findall(body))
    assert n_img >= _n_images(page) >= 1, f"{_n_images(page)} figures in the executed notebook, {n_img} PNG images in the HTML"
    title = _title(nb)
    assert title and re.search(r"<h1[^>]*>\s*" + re.escape(html.escape(title, quote=False)), body)


# ---------------------------------------------------------------------------------------------------------
# Colab: badge, install cell, README links

@pytest.mark.parametrize("nb_path", TUTORIALS, ids=lambda p: p.stem)
def test_colab_badge(nb_path):
    s = _settings()
    nb = _read(nb_path)
    rel = nb_path.relative_to(ROOT).as_posix()
    expected = f"https://colab.research.google.com/github/{s['user']}/{s['repo']}/blob/{s['branch']}/{rel}"
    badges = [(i, m) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
              for m in BADGE_RE.finditer(c.source) if "colab" in m["img"] or "colab" in m["link"]]
    assert len(badges) == 1, f"{nb_path.name}: expected one Open In Colab badge, found {len(badges)}"
    i, m = badges[0]
    assert m["link"] == expected, f"{nb_path.name}: the Colab badge links to {m['link']}, not {expected}"
    assert m["img"] == COLAB_BADGE_IMG, f"{nb_path.name}: the badge image is {m['img']}, not {COLAB_BADGE_IMG}"
    assert m["alt"] == "Open In Colab", f"{nb_path.name}: the badge text is {m['alt']!r}"
    first_visible_code = min((j for j, _ in _visible_code(nb)), default=len(nb.cells))
    assert i < first_visible_code, f"{nb_path.name}: the Colab badge (cell {i}) comes after the first code cell"


@pytest.mark.parametrize("nb_path", TUTORIALS, ids=lambda p: p.stem)
def test_colab_install_cell(nb_path):
    s = _settings()
    cell = _read(nb_path).cells[0]
    assert cell.cell_type == "code" and _hidden(cell), f"{nb_path.name}: the first cell is not a hidden (#| hide) code cell"
    src = cell.source
    assert re.search(r"""["']google\.colab["']\s+in\s+sys\.modules""", src), \
        f"{nb_path.name}: the install cell does not run only in Colab"
    strings = [n.value for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert "pip" in strings and "install" in strings, f"{nb_path.name}: the first cell does not pip install"
    targets = [t for t in strings if "git+" in t]
    assert len(targets) == 1, f"{nb_path.name}: expected one git+ pip target in the install cell, found {targets}"
    pattern = (rf"{re.escape(s['lib_name'])}(\[[\w,\s-]+\])?\s*@\s*"
               rf"git\+https://github\.com/{re.escape(s['user'])}/{re.escape(s['repo'])}(\.git)?(@[\w./-]+)?")
    assert re.fullmatch(pattern, targets[0]), \
        f"{nb_path.name}: the pip target {targets[0]!r} does not install git+https://github.com/{s['user']}/{s['repo']}"


def _readme_links() -> list:
    s = _settings()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    prefix = re.escape(f"https://github.com/{s['user']}/{s['repo']}/blob/{s['branch']}/")
    return re.findall(prefix + r"([^)\s\"'>#]+)", text)


@pytest.mark.parametrize("nb_path", TUTORIALS, ids=lambda p: p.stem)
def test_readme_links_tutorial(nb_path):
    rel = nb_path.relative_to(ROOT).as_posix()
    assert rel in _readme_links(), f"README.md does not link to {rel}"


def test_readme_links_point_to_files():
    links = _readme_links()
    assert any(l.startswith("nbs/tutorials/") for l in links), "README.md links to no tutorial"
    missing = [l for l in links if not (ROOT / l).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


# ---------------------------------------------------------------------------------------------------------
# the check of the processed pages (.ci/docs.py, run by .ci/run after nbdev's processing): it finds what it must

def _docs_check():
    spec = importlib.util.spec_from_file_location("ci_docs", ROOT / ".ci" / "docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_CFG = dict(doc_host="https://example.github.io", doc_baseurl="/pkg", user="someone", repo="pkg", branch="main")


def _md(text): return nbformat.v4.new_markdown_cell(text)


def _show_doc_output(md):
    "A code cell whose output is show_doc's markdown, as nbdev's processing leaves it."
    cell = nbformat.v4.new_code_cell("show_doc(f)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": md, "text/plain": "f"})]
    return cell


def _site(tmp_path, pages: dict, files=()):
    "pages: notebook path under _proc -> list of cells; files: repository files that exist."
    proc, root = tmp_path / "_proc", tmp_path / "repo"
    for rel, cells in pages.items():
        p = proc / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        nb = nbformat.v4.new_notebook(); nb.cells = cells
        nbformat.write(nb, p)
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("line 1\nline 2\nline 3\n")
    return _docs_check().Site(proc, root / "nbs", root, _CFG)


def test_docs_check_pandoc_ids():
    ids = _docs_check().pandoc_id
    assert ids("The same on Ray") == "the-same-on-ray"
    assert ids("VDP.forward") == "vdp.forward"  # what nbdev's links to a method point to
    assert ids("[`fit`](https://example.github.io/pkg/fitting.html#fit): the main job") == "fit-the-main-job"
    assert ids("2. Checks, *first*") == "checks-first"


def test_docs_check_finds_broken_links(tmp_path):
    site = _site(tmp_path, {
        "03_models.ipynb": [_md("# Models\n\n## Simulate it\n\nsee [below](#simulate-it), [gone](#nowhere)"),
                            _show_doc_output("---\n\n### VDP\n\n```python\ndef VDP(mu)\n```\n\n*The oscillator.*")],
        "index.ipynb": [_md("[`VDP`](https://example.github.io/pkg/models.html#vdp) and [`_helper`](https://example.github.io/pkg/models.html#_helper)"),
                        _md("[`fit`](https://example.github.io/pkg/fitting.html#fit), [models](03_models.ipynb#simulate-it), "
                            "[tutorial](tutorials/vdp.ipynb)"),
                        _md("[code](https://github.com/someone/pkg/blob/main/pkg/models.py#L2), "
                            "[line](https://github.com/someone/pkg/blob/main/pkg/models.py#L40), "
                            "[nb](https://github.com/someone/pkg/blob/main/nbs/tutorials/vdp.ipynb), "
                            "[elsewhere](https://pytorch.org/docs) [old](https://github.com/someone/pkg/blob/dev/pkg/models.py)")],
    }, files=["pkg/models.py"])
    problems = "\n".join(site.problems())
    for broken in ("#nowhere", "models.html has no anchor #_helper", "no page fitting.html", "no page tutorials/vdp.html",
                   "pkg/models.py has no line 40", "no file nbs/tutorials/vdp.ipynb", "branch dev, not main"):
        assert broken in problems, f"not reported: {broken}\n{problems}"
    for fine in ("#simulate-it:", "models.html#vdp:", "models.py#L2:", "pytorch.org"):
        assert fine not in problems, f"reported though it is fine: {fine}\n{problems}"
    assert len(site.problems()) == 7


def test_docs_check_links_nbdev_makes(tmp_path):
    "The links nbdev makes of backticked names (NbdevLookup, this package's _modidx.py) are the links the check reads."
    from nbdev.doclinks import NbdevLookup
    md = NbdevLookup().linkify("`fit` and `simulate`")
    assert "](" in md, "nbdev links no name of this package: is paramfittorchdemo installed (its nbdev entry point)?"
    cfg = _settings()
    url = cfg["doc_host"].rstrip("/") + "/" + cfg["doc_baseurl"].strip("/") + "/"
    site = _site(tmp_path, {"index.ipynb": [_md(md)], "03_models.ipynb": [_show_doc_output("### simulate\n\n*Solve.*")]})
    site.url = url
    problems = site.problems()
    assert len(problems) == 1 and "no page fitting.html" in problems[0], problems


def test_docs_check_finds_bad_outputs(tmp_path):
    def out(text, name="stdout"):
        c = nbformat.v4.new_code_cell("x")
        c.outputs = [nbformat.v4.new_output("stream", name=name, text=text)]
        return c
    site = _site(tmp_path, {"14_cli.ipynb": [
        _show_doc_output("### f\n\n```python\ndef f(\n    x, # a [`SimODEData`](https://example.github.io/pkg/data.html#simodedata)\n):\n```"),
        out("wrote params.json to /tmp/tmpab12_x9z/vdp\n"),
        out("2026-12-02 08:17:05,489\tINFO util.py:155 -- Missing packages: ['ipywidgets'].\n", "stderr"),
        out("/x/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n", "stderr"),
        out("\rfit_many: 100%|##########| 200/200 [00:05<00:00, 34.19dataset/s]", "stderr"),
        out("wrote params.json to vdp\ntrain: 100%|##########| 3/3 [00:00<00:00, 38.76epoch/s]\n"),  # fine: a bar printed on purpose
    ]})
    problems = site.problems()
    kinds = ["link markup in a signature", "a temporary folder", "a log line", "a warning", "a progress bar"]
    for kind in kinds:
        assert any(kind in p for p in problems), f"not reported: {kind}\n{problems}"
    assert not any(" cell 5" in p for p in problems), problems
    assert len(problems) == len(kinds), problems


def test_docs_check_finds_cells_that_mix_imports_with_code(tmp_path):
    "A cell the doc processing executes (here for its import) runs without the cells before it: nbdev only warns."
    def nb(cells):
        n = nbformat.v4.new_notebook()
        n.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
        n.cells = [nbformat.v4.new_code_cell("#| export\ndef f(): return 1"), nbformat.v4.new_code_cell("y = f()")]
        n.cells += [nbformat.v4.new_code_cell(c) for c in cells]
        return n
    check = _docs_check()
    mixed, separate = tmp_path / "mixed.ipynb", tmp_path / "separate.ipynb"
    nbformat.write(nb(["import json\nprint(json.dumps(y))"]), mixed)
    nbformat.write(nb(["import json", "print(json.dumps(y))"]), separate)
    found = check.mixed_cells(mixed)
    assert len(found) == 1 and "import json" in found[0], found
    assert check.mixed_cells(separate) == []
