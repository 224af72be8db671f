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
