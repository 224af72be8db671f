"""The benchmark script at reduced size: it must run, and its correctness checks must hold (timing is not checked here)."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("scipy")
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fit.py"


def load():
    spec = importlib.util.spec_from_file_location("bench_fit", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_benchmark_checks_hold(capsys):
    bench = load()
    rows, checks = bench.run(quick=True)
    bench.print_table(rows, checks)
    out = capsys.readouterr().out
    assert "fit (LM, dopri5)" in out and "reference loop" in out
    failed = [what for what, ok in checks if not ok]
    assert not failed, failed
    assert len(checks) == 9  # per problem: train == reference loop, fit reaches scipy's optimum, fit's loss <= scipy's lowest
