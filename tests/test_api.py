"The public API: what `paramfittorchdemo.__all__` holds, that each name is documented, and that the 0.1.0 import paths still work."
import importlib
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import paramfittorchdemo

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {  # module -> its names in paramfittorchdemo.__all__
    "models": ["simulate", "VDP", "LotkaVolterra", "Lorenz", "NeuralDiffEq", "FunctionODE", "param_dict", "ModelError"],
    "hybrid": ["HybridODE", "ODEBlock"],
    "data": ["SimODEData", "create_sim_dataset"],
    "observations": ["Observations", "load_lynx_hare"],
    "solvers": ["solver_options", "FIXED_STEP_METHODS", "ADAPTIVE_METHODS", "SolverError"],
    "plotting": ["plot_time_series", "plot_phase_plane", "plot_history", "plot_fit", "plot_residuals", "plot_traces", "plot_profile"],
    "callbacks": ["Callback", "TrainState", "History", "DivergenceError", "PrintLoss", "PlotSnapshots", "ProgressBar", "EarlyStopping",
                  "BestParameters", "TensorBoardLogger", "MLflowLogger"],
    "checkpoints": ["save_checkpoint", "load_checkpoint", "CheckpointError"],
    "training": ["train"],
    "lm": ["FitWarning"],
    "fitting": ["fit", "FitResult"],
    "estimation": ["estimate", "Estimate", "Param", "Profile"],
    "discovery": ["sindy", "PolynomialODE", "plot_terms"],
    "many": ["fit_many", "estimate_many", "ManyFits"],
}

# shared between modules, so without a leading underscore, but not for users: importable from their module, in no __all__
INTERNAL = {"plotting": ["fig_ax"], "models": ["blame_model"], "callbacks": ["check_callbacks", "run_hooks", "end_hooks", "MAX_TRACKED"],
            "checkpoints": ["Checkpointer"], "many": ["LEVEL", "CHUNK_SIZE"], "observations": ["check_t0"], "fitting": ["fit_start"]}

# the public names of each module at version 0.1.0 (its __all__ in the commit before the one-way layers)
V010 = {
    "models": ["FIXED_STEP_METHODS", "ADAPTIVE_METHODS", "solver_options", "ModelError", "simulate", "VDP", "LotkaVolterra", "Lorenz",
               "NeuralDiffEq", "param_dict", "FunctionODE", "HybridODE", "ODEBlock"],
    "data": ["SimODEData", "create_sim_dataset"],
    "plotting": ["plot_time_series", "plot_phase_plane", "plot_history", "plot_fit", "plot_residuals", "plot_traces", "plot_profile"],
    "training": ["History", "DivergenceError", "TrainState", "Callback", "PlotSnapshots", "save_checkpoint", "load_checkpoint", "train",
                 "FitResult", "fit", "ProgressBar", "BestParameters", "EarlyStopping", "TensorBoardLogger", "MLflowLogger"],
    "observations": ["Observations", "load_lynx_hare"],
    "estimation": ["Param", "Profile", "Estimate", "estimate"],
    "discovery": ["PolynomialODE", "sindy", "plot_terms"],
    "lm": ["STATUSES", "RUNNING", "CONVERGED", "STALLED", "MAX_ITER", "MAX_TIME", "FAILED", "ABANDONED", "STOPPED", "TESTS", "LAM_START",
           "LAM_MIN", "LAM_MAX", "AUTO_HORIZONS", "STAGE_XTOL", "STRUCTURED", "FitWarning", "lm_step", "LMResult", "lm", "distinct_starts",
           "lm_phases", "state_bound", "fit_phases", "horizon_fractions", "horizon_lengths", "residual_autocorrelation",
           "gauss_newton_covariance", "describe_null"],
    "solvers": ["NATIVE_METHODS", "SMALL_WORK", "rk4", "SolverError", "SolveStats", "dopri5", "rhs_work", "small_work_threads", "integrate",
                "ParamSpec", "jacobian_mode", "rhs_traits", "solve_with_jacobian"],
    "cli": ["demo", "demo_main", "fit_main"],
}
# where the names that left their 0.1.0 module live now
MOVED = {("models", "HybridODE"): "hybrid", ("models", "ODEBlock"): "hybrid", ("models", "FIXED_STEP_METHODS"): "solvers",
         ("models", "ADAPTIVE_METHODS"): "solvers", ("training", "FitResult"): "fitting", ("training", "fit"): "fitting",
         ("training", "save_checkpoint"): "checkpoints", ("training", "load_checkpoint"): "checkpoints",
         **{("training", n): "callbacks" for n in ("ProgressBar", "BestParameters", "EarlyStopping", "TensorBoardLogger", "MLflowLogger")}}


def test_all_holds_exactly_the_public_api():
    names = paramfittorchdemo.__all__
    assert len(names) == len(set(names)), f"listed twice: {sorted({n for n in names if names.count(n) > 1})}"
    expected = {n for ns in PUBLIC.values() for n in ns} | {"__version__"}
    assert set(names) == expected, f"unexpected: {sorted(set(names) - expected)}; missing: {sorted(expected - set(names))}"
    for mod, ns in PUBLIC.items():
        module = importlib.import_module(f"paramfittorchdemo.{mod}")
        for n in ns: assert getattr(paramfittorchdemo, n) is getattr(module, n), f"paramfittorchdemo.{n} is not {mod}.{n}"


def test_internal_helpers_are_importable_but_in_no_all():
    star_imported = [m for m in PUBLIC if m not in ("solvers", "lm")]
    for mod, ns in INTERNAL.items():
        module = importlib.import_module(f"paramfittorchdemo.{mod}")
        for n in ns:
            assert hasattr(module, n), f"{mod}.{n} is gone, but other modules import it"
            assert n not in module.__all__ and n not in paramfittorchdemo.__all__, f"{mod}.{n} is internal but listed in an __all__"
    for mod in star_imported:  # no name in a star-imported module's __all__ outside the public API
        extra = set(importlib.import_module(f"paramfittorchdemo.{mod}").__all__) - set(PUBLIC[mod])
        assert not extra, f"paramfittorchdemo.{mod}.__all__ lists {sorted(extra)}, which are not in the public API"


def _api_section() -> str:
    cells = json.loads((ROOT / "nbs" / "index.ipynb").read_text(encoding="utf-8"))["cells"]
    texts = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    return next(t for t in texts if t.startswith("## The public API"))


def test_every_public_name_is_documented():
    "index.ipynb (and so the README) lists every public name under its module, and each function and class has a docstring."
    listed = {}
    for line in _api_section().splitlines():
        m = re.match(r"- \*\*(\w+)\*\*: (.*)", line)
        if m: listed[m.group(1)] = re.findall(r"`(\w+)`", m.group(2))
    assert listed == PUBLIC, "the public API section of nbs/index.ipynb and paramfittorchdemo.__all__ differ"
    assert "`__version__`" in _api_section()
    for n in paramfittorchdemo.__all__:
        obj = getattr(paramfittorchdemo, n)
        if callable(obj): assert (obj.__doc__ or "").strip(), f"{n} has no docstring"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(f"`{n}`" in readme for n in paramfittorchdemo.__all__)


def test_the_010_names_are_still_there():
    "Every public name of 0.1.0 is still importable from its 0.1.0 module and from the package."
    for mod, names in V010.items():
        module = importlib.import_module(f"paramfittorchdemo.{mod}")
        for n in names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                assert getattr(module, n, None) is not None, f"`from paramfittorchdemo.{mod} import {n}` (0.1.0) fails"
            if mod in ("models", "data", "plotting", "training", "observations", "estimation", "discovery"):  # 0.1.0's star imports
                assert n in paramfittorchdemo.__all__, f"`from paramfittorchdemo import {n}` (0.1.0) fails"


@pytest.mark.parametrize("old,name", sorted(MOVED))
def test_a_010_path_warns_and_names_the_new_import(old, name):
    new = MOVED[old, name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ns = {}
        exec(compile(f"from paramfittorchdemo.{old} import {name}", __file__, "exec"), ns)  # the user's line
    assert ns[name] is getattr(importlib.import_module(f"paramfittorchdemo.{new}"), name)
    assert [w.category for w in caught] == [DeprecationWarning]
    text = str(caught[0].message)
    assert f"from paramfittorchdemo import {name}" in text and f"from paramfittorchdemo.{new} import {name}" in text
    assert f"paramfittorchdemo.{old}.{name}" in text and "0.1.0" in text
    assert caught[0].filename == __file__, f"the warning points at {caught[0].filename}, not at the line that imported {name}"


def test_names_that_stayed_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from paramfittorchdemo.training import History, train  # noqa: F401  (History: imported by training, 0.1.0's path)
        from paramfittorchdemo.models import simulate, solver_options  # noqa: F401
    with pytest.raises(ImportError, match="cannot import name 'nothing'"):
        from paramfittorchdemo.training import nothing  # noqa: F401


def test_old_names_do_not_make_a_low_layer_import_a_high_one():
    """Loading the modules bottom to top without the package's __init__, each loads only its own layer and the ones below; an old name
    read from `training` then brings in `fitting`."""
    from test_layout import LAYERS  # tests/ is on sys.path under pytest
    code = f"""
import sys, types, warnings
pkg = types.ModuleType("paramfittorchdemo"); pkg.__path__ = [{str(ROOT / 'paramfittorchdemo')!r}]; pkg.__version__ = "test"
sys.modules["paramfittorchdemo"] = pkg
layers = {LAYERS!r}
import importlib
for i, mod in enumerate(layers):
    importlib.import_module("paramfittorchdemo." + mod)
    above = [m for m in layers[i + 1:] if "paramfittorchdemo." + m in sys.modules]
    assert not above, f"importing {{mod}} loaded {{above}}"
print("layers ok")
"""
    # in another fresh interpreter: training alone, then an old name read from it
    lazy = f"""
import sys, types, warnings
pkg = types.ModuleType("paramfittorchdemo"); pkg.__path__ = [{str(ROOT / 'paramfittorchdemo')!r}]
sys.modules["paramfittorchdemo"] = pkg
import paramfittorchdemo.training as training
assert "paramfittorchdemo.fitting" not in sys.modules
warnings.simplefilter("ignore")
training.fit
assert "paramfittorchdemo.fitting" in sys.modules
print("lazy ok")
"""
    for src, word in ((code, "layers ok"), (lazy, "lazy ok")):
        out = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert out.returncode == 0 and word in out.stdout, out.stderr[-2000:]
