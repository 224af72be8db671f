"The package is built in one-way layers: each module imports only from the ones below it, and no private name crosses a module border."
import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "paramfittorchdemo"
# bottom to top: a module may import from the ones before it in this list, never from the ones after it
LAYERS = ["_checks", "observations", "solvers", "models", "hybrid", "data", "plotting", "callbacks", "checkpoints", "training", "lm",
          "fitting", "estimation", "discovery", "cli", "many"]


def package_imports(path: Path) -> list:
    "(module imported from, names) for every import of the package inside `path`, at any depth (lazy imports too)."
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1: target = mod
            elif mod.startswith("paramfittorchdemo."): target = mod.split(".", 1)[1]
            elif mod == "paramfittorchdemo": target = ""
            else: continue
            out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name.split(".", 1)[1], []) for a in node.names if a.name.startswith("paramfittorchdemo.")]
    return out


def test_every_module_has_its_layer():
    modules = {p.stem for p in PKG.glob("*.py")} - {"__init__", "_modidx"}
    assert modules == set(LAYERS), f"modules not in LAYERS: {modules - set(LAYERS)}; in LAYERS but missing: {set(LAYERS) - modules}"


def test_modules_import_only_from_the_layers_below():
    for mod in LAYERS:
        for target, names in package_imports(PKG / f"{mod}.py"):
            if target == "" and names == ["__version__"]: continue  # the version string, from the package's __init__
            assert target in LAYERS, f"{mod} imports from {target!r}, which is not a module of the package"
            assert LAYERS.index(target) < LAYERS.index(mod), f"{mod} imports {names} from {target}, a layer above it"


def test_no_private_name_crosses_a_module_border():
    for mod in LAYERS:
        for target, names in package_imports(PKG / f"{mod}.py"):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            assert not private, f"{mod} imports the private name(s) {private} from {target}"


def test_notebooks_are_numbered_in_the_order_of_the_layers():
    for i, mod in enumerate(LAYERS):
        nb = ROOT / "nbs" / f"{i:02d}_{mod.lstrip('_')}.ipynb"
        assert nb.exists(), f"the notebook of {mod} should be {nb.name}"
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        first = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])  # the title may come before it
        assert first.strip() == f"#| default_exp {mod}", f"{nb.name}'s first code cell is {first!r}, not #| default_exp {mod}"


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
