import importlib.util
import os
import sys
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import pytest
import torch

# The peak resident memory of each test module, measured in this process with benchmarks/peak.py (Linux: the kernel's high-water
# mark, reset before each module), printed after the run; a module above the cap (PFTD_MEMORY_CAP_GB, 4 by default) fails the run.
# Ray's workers and other subprocesses are not counted here: their memory is their own.
MEMORY_CAP_GB = float(os.environ.get("PFTD_MEMORY_CAP_GB", "4"))
_spec = importlib.util.spec_from_file_location("pftd_peak", Path(__file__).resolve().parents[1] / "benchmarks" / "peak.py")
_peak = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))  # registered first: it holds dataclasses
_spec.loader.exec_module(_peak)
_peaks: dict = {}  # module -> [peak bytes, the test during which the peak was reached]
_current = {"module": None}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    module = item.module.__name__ if item.module is not None else item.nodeid.split("::")[0]
    if module != _current["module"]:
        _current["module"] = module
        _peak.reset_peak()
    yield
    peak = _peak.process_peak_bytes()
    if peak > _peaks.get(module, [0])[0]: _peaks[module] = [peak, item.nodeid.split("::", 1)[-1]]


def pytest_terminal_summary(terminalreporter):
    if not _peaks: return
    tr = terminalreporter
    tr.section(f"peak resident memory per test module (cap {MEMORY_CAP_GB:g} GB)")
    for module, (peak, test) in sorted(_peaks.items(), key=lambda kv: -kv[1][0]):
        tr.write_line(f"{peak/1e9:7.2f} GB  {module}  (highest during {test})")
    over = [m for m, (p, _) in _peaks.items() if p > MEMORY_CAP_GB*1e9]
    if over: tr.write_line(f"over the cap of {MEMORY_CAP_GB:g} GB: {', '.join(over)}", red=True)


def pytest_sessionfinish(session, exitstatus):
    if any(p > MEMORY_CAP_GB*1e9 for p, _ in _peaks.values()) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _seed_and_close_figures():
    "Every test starts from the same global seed and leaves no figure open."
    torch.manual_seed(0)
    yield
    import matplotlib.pyplot as plt
    plt.close("all")
