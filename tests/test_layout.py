"""The package is built in one-way layers: each module imports only from the ones below it, and no private name crosses a module border.
A layer may be a subpackage (`solvers`): its files are layers of their own inside it, in the order of SUBLAYERS, and may share private
names among themselves (one layer, split into files for size), never with the rest of the package."""
import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "paramfittorchdemo"
# bottom to top: a module may import from the ones before it in this list, never from the ones after it
LAYERS = ["_checks", "observations", "solvers", "models", "hybrid", "data", "plotting", "callbacks", "checkpoints", "training", "lm",
          "fitting", "estimation", "discovery", "cli", "many"]
# the files of a subpackage, bottom to top; its __init__ (the layer's notebook, NN_<layer>.ipynb) re-exports them, and their notebooks
# are NNa_<file>.ipynb, NNb_<file>.ipynb, ... in this order (a letter may be skipped, for a file still to come)
SUBLAYERS = {"solvers": {"explicit": "a", "implicit": "b", "entry": "c", "sensitivities": "d"}}


def _source(mod: str) -> Path:
    "The file of a layer (a module, or a subpackage's __init__) or of a subpackage's file ('solvers.entry')."
    if "." in mod: return PKG / (mod.replace(".", "/") + ".py")
    return PKG / mod / "__init__.py" if mod in SUBLAYERS else PKG / f"{mod}.py"


def _files() -> list:
    "Every file of the package as a layer name: the modules, the subpackages, and the subpackages' files."
    return LAYERS + [f"{pkg}.{sub}" for pkg, subs in SUBLAYERS.items() for sub in subs]


def package_imports(path: Path, package: str = "") -> list:
    """(module imported from, names) for every import of the package inside `path`, at any depth (lazy imports too); `package`: the
    subpackage `path` belongs to, whose relative imports ('from .entry import ...') name its files ('solvers.entry')."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 and package: target = f"{package}.{mod}" if mod else package
            elif node.level == 1 or node.level == 2 and package: target = mod
            elif mod.startswith("paramfittorchdemo."): target = mod.split(".", 1)[1]
            elif mod == "paramfittorchdemo": target = ""
            else: continue
            if target == package and package: out += [(f"{package}.{a.name}", []) for a in node.names]  # from . import entry
            else: out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name.split(".", 1)[1], []) for a in node.names if a.name.startswith("paramfittorchdemo.")]
    return out


def test_every_module_has_its_layer():
    modules = {p.stem for p in PKG.glob("*.py")} - {"__init__", "_modidx"}
    modules |= {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert modules == set(LAYERS), f"modules not in LAYERS: {modules - set(LAYERS)}; in LAYERS but missing: {set(LAYERS) - modules}"
    for pkg, subs in SUBLAYERS.items():
        files = {p.stem for p in (PKG / pkg).glob("*.py")} - {"__init__"}
        assert files == set(subs), f"files of {pkg} not in SUBLAYERS: {files - set(subs)}; listed but missing: {set(subs) - files}"


def _rank(mod: str) -> tuple:
    "Where a file sits: its layer's place, then (inside a subpackage) its own place, the subpackage's __init__ above its files."
    top, _, sub = mod.partition(".")
    subs = list(SUBLAYERS.get(top, {}))
    return LAYERS.index(top), subs.index(sub) if sub else len(subs)


def test_modules_import_only_from_the_layers_below():
    files = _files()
    for mod in files:
        for target, names in package_imports(_source(mod), mod.partition(".")[0] if mod.partition(".")[0] in SUBLAYERS else ""):
            if target == "" and names == ["__version__"]: continue  # the version string, from the package's __init__
            assert target in files, f"{mod} imports from {target!r}, which is not a module of the package"
            assert _rank(target) < _rank(mod), f"{mod} imports {names} from {target}, a layer above it"


def test_no_private_name_crosses_a_module_border():
    for mod in _files():
        top = mod.partition(".")[0]
        for target, names in package_imports(_source(mod), top if top in SUBLAYERS else ""):
            if top in SUBLAYERS and target.partition(".")[0] == top: continue  # the files of one subpackage: one layer
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            assert not private, f"{mod} imports the private name(s) {private} from {target}"


def _first_code(nb: Path) -> str:
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"]).strip()  # the title may come before it


def test_notebooks_are_numbered_in_the_order_of_the_layers():
    for i, mod in enumerate(LAYERS):
        nb = ROOT / "nbs" / f"{i:02d}_{mod.lstrip('_')}.ipynb"
        assert nb.exists(), f"the notebook of {mod} should be {nb.name}"
        want = f"#| default_exp {mod}.__init__" if mod in SUBLAYERS else f"#| default_exp {mod}"
        assert _first_code(nb) == want, f"{nb.name}'s first code cell is {_first_code(nb)!r}, not {want}"
        letters = list(SUBLAYERS.get(mod, {}).values())
        assert letters == sorted(letters), f"the files of {mod} have their letters out of order: {SUBLAYERS[mod]}"
        for sub, letter in SUBLAYERS.get(mod, {}).items():
            nb = ROOT / "nbs" / f"{i:02d}{letter}_{sub}.ipynb"
            assert nb.exists(), f"the notebook of {mod}.{sub} should be {nb.name}"
            assert _first_code(nb) == f"#| default_exp {mod}.{sub}", f"{nb.name}'s first code cell is {_first_code(nb)!r}"


def test_star_import_binds_the_public_api_and_no_submodule():
    "`from paramfittorchdemo import *` binds the modules' public names (each module's own __all__), never a submodule such as `data`."
    import types
    import paramfittorchdemo
    ns = {}
    exec("from paramfittorchdemo import *", ns)
    modules = sorted(k for k, v in ns.items() if isinstance(v, types.ModuleType))
    assert not modules, f"the star import binds the submodule(s) {modules}; list only public API names in __init__.__all__"
    assert len(set(paramfittorchdemo.__all__)) == len(paramfittorchdemo.__all__), "__all__ lists a name twice"
    for mod in set(LAYERS) - {"_checks", "solvers", "lm", "cli"}:  # the star-imported modules: every public name of theirs is there
        missing = set(getattr(paramfittorchdemo, mod).__all__) - set(ns)
        assert not missing, f"the star import misses {sorted(missing)} of paramfittorchdemo.{mod}"
    for name in ("__version__", "ADAPTIVE_METHODS", "FIXED_STEP_METHODS", "SolverError", "solver_options", "FitWarning"):
        assert name in ns, f"the star import misses {name}"
    # every name the blog post's code (tests/test_post_examples.py, which star-imports the package) takes from the package is there
    tree = ast.parse((ROOT / "tests" / "test_post_examples.py").read_text(encoding="utf-8"))
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    from_package = {n for n in used if hasattr(paramfittorchdemo, n) and not isinstance(getattr(paramfittorchdemo, n), types.ModuleType)}
    assert {"VDP", "LotkaVolterra", "Lorenz", "create_sim_dataset", "train", "plot_time_series"} <= from_package, from_package
    assert from_package <= set(ns), f"the post's code uses {sorted(from_package - set(ns))}, which the star import no longer binds"
