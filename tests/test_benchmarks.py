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


ANCHOR = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_anchor.py"


def test_anchor_benchmark_runs_without_jax(tmp_path):
    "bench_anchor.py --quick on one problem: the JAX rows are skipped with a note, the library reaches the optimum, the table prints."
    import json
    import subprocess
    import sys
    out = tmp_path / "anchor.json"
    p = subprocess.run([sys.executable, str(ANCHOR), "--quick", "--problems", "vdp", "--json", str(out)], capture_output=True, text=True,
                       timeout=600, env={**__import__("os").environ, "JAX_PLATFORMS": "cpu"})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    have_jax = importlib.util.find_spec("jax") is not None
    assert have_jax or "JAX/diffrax not installed: pip install paramfittorchdemo[bench]" in p.stdout
    assert "library train" in p.stdout and "reference loop" in p.stdout and "[ok] vdp: library's loss/opt-1" in p.stdout
    res = json.loads(out.read_text())
    assert res["problems"]["vdp"]["rows"]["library"]["dist"] < 1e-4


def test_dev_environment_has_no_jax():
    "JAX belongs to the bench extra only: the dev/CI environment must not pull it in."
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(Path(__file__).resolve().parents[1] / "settings.ini")
    dev = cfg["DEFAULT"]["dev_requirements"]
    assert "jax" not in dev and "diffrax" not in dev and "jax" in cfg["DEFAULT"]["bench_requirements"]
