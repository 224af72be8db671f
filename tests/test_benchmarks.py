"""The benchmark scripts at reduced size: they must run, report each row's peak memory, and their correctness checks must hold
(timing is not checked here); and the peak-memory helper they share measures each block on its own."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("scipy")
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fit.py"
PEAK = Path(__file__).resolve().parents[1] / "benchmarks" / "peak.py"


def load_peak():
    spec = importlib.util.spec_from_file_location("peak", PEAK)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def test_peak_memory_is_each_blocks_own():
    "A 200 MB tensor inside a measured block shows in its peak; a later block without it shows less: the reset works."
    peak = load_peak()
    if not peak.RESETS: pytest.skip("no /proc/self/clear_refs: the peak is the process's so far")
    def big():
        x = torch.ones(50_000_000)  # 200 MB of float32, written, so resident
        return float(x[-1])
    out, a = peak.measure(big)
    _, b = peak.measure(lambda: torch.ones(1000).sum())
    assert out == 1.0
    assert a.peak_mb > 200 and a.rise_mb > 180, a  # pages freed just before may already be resident: not all 200 MB are new
    assert b.rise_mb < 50 and b.peak_mb < a.peak_mb - 150, (a, b)
    assert peak.worst([a, b]).peak == a.peak and set(a.as_dict()) == {"peak_mb", "rise_mb"}
    assert peak.mb(a.peak_mb) == f"{a.peak_mb:.0f}" and peak.mb(None) == "-"


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
    assert "peak MB" in out.splitlines()[2] and all(row[-1].peak_mb > 100 for row in rows)  # torch alone keeps >100 MB resident
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
    assert "first MB" in p.stdout and "peak MB" in p.stdout
    res = json.loads(out.read_text())
    lib = res["problems"]["vdp"]["rows"]["library"]
    assert lib["dist"] < 1e-4
    assert lib["first"]["peak_mb"] > 100 and lib["peak_mb"] > 100  # the fresh process's peak, the warm calls' peak
    assert all(row["peak_mb"] > 100 for row in res["neural_ode"]["rows"].values())


def test_dev_environment_has_no_jax():
    "JAX belongs to the bench extra only: the dev/CI environment must not pull it in."
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(Path(__file__).resolve().parents[1] / "settings.ini")
    dev = cfg["DEFAULT"]["dev_requirements"]
    assert "jax" not in dev and "diffrax" not in dev and "jax" in cfg["DEFAULT"]["bench_requirements"]
