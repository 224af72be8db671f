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


STIFF = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_stiff.py"


def load_stiff():
    "bench_stiff as a module; the thread variables it sets for its own runs are put back, so that they do not leak into other tests."
    import os
    saved = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    spec = importlib.util.spec_from_file_location("bench_stiff", STIFF)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    finally:
        for v, x in saved.items():
            if x is None: os.environ.pop(v, None)
            else: os.environ[v] = x
    return mod


def test_stiff_models_agree_with_numpy_and_autograd():
    """Each stiff problem: its torch right-hand side (from `terms`) and numpy's (scipy's) equal the published equations written on the
    components, its analytic Jacobians equal the componentwise one and autograd's, and (B, P) constants make B parameter sets."""
    bench = load_stiff()
    gen = torch.Generator().manual_seed(0)
    for name, P in bench.PROBLEMS.items():
        y = 0.01 + 0.1*torch.rand(P.dim, generator=gen, dtype=torch.float64)
        model, k = P(), P.defaults
        f, jac = model.numpy_fns()
        dy = model(torch.tensor(0.0), y).detach()
        eq = torch.tensor([float(v) for v in P.equations(y.tolist(), k)], dtype=torch.float64)
        scale = float(eq.abs().max())  # terms summed in another order: equal to rounding, relative to the largest component
        torch.testing.assert_close(dy, eq, rtol=1e-12, atol=1e-14*scale, msg=name)
        torch.testing.assert_close(torch.from_numpy(f(0.0, y.numpy())), eq, rtol=1e-12, atol=1e-14*scale, msg=name)
        entries = torch.tensor([[float(v) for v in row] for row in P.jacobian_entries(y.tolist(), k)], dtype=torch.float64)
        auto = torch.func.jacrev(lambda x: model(torch.tensor(0.0), x))(y).detach()
        mine = model.jacobian(torch.tensor(0.0), y).detach()
        for other in (auto, entries, torch.from_numpy(jac(0.0, y.numpy()))):
            torch.testing.assert_close(mine, other, rtol=1e-12, atol=1e-14*float(entries.abs().max()), msg=name)
        ks = torch.as_tensor(bench.batch_parameters(name, 3, seed=0))
        batch = P(ks)
        ys = y.expand(3, P.dim)
        assert batch(0.0, ys).shape == (3, P.dim) and batch.jacobian(0.0, ys).shape == (3, P.dim, P.dim), name
        for i in range(3):  # row i of the batch is the model with the i-th set of constants
            torch.testing.assert_close(batch(0.0, ys)[i], P(ks[i])(0.0, y), rtol=1e-14, atol=0, msg=name)
        assert bool(((ks/torch.tensor(P.defaults) - 1).abs() <= 0.25 + 1e-12).all()), name
    with pytest.raises(ValueError, match=r"Robertson needs constants of shape \(\.\.\., 3\)"):
        bench.Robertson([1.0, 2.0])


def test_stiff_benchmark_quick(tmp_path):
    """bench_stiff.py --quick: the references agree with the published final values, the scipy rows run and meet their tolerance target,
    dopri5's failures on stiff problems are rows with a reason (not a crash), the memory columns are filled, the figure is drawn."""
    import json
    import subprocess
    out, fig = tmp_path / "stiff.json", tmp_path / "wp.png"
    cmd = [sys.executable, str(STIFF), "--quick", "--cache", str(tmp_path / "cache"), "--json", str(out), "--figure", str(fig)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert set(res["references"]) == {"robertson", "pollution"} and not res["errors"]
    for name, ref in res["references"].items():
        assert ref["published_diff"] < 1e-8 and ref["self_error"] < 1e-8, (name, ref)  # Test Set's final values; the reference's own error
    lines = p.stdout.splitlines()
    head = lines[lines.index("work-precision:") + 1]
    assert "err/rtol" in head and "peak MB" in head and "+MB" in head
    rows = res["rows"]
    scipy_rows = [r for r in rows if r["method"] in ("radau", "bdf", "lsoda")]
    assert len(scipy_rows) == 2*2*3  # problems x rtols x methods
    for r in scipy_rows:
        assert r["status"] == "ok" and r["err"] <= 10 and r["peak_mb"] > 100 and r["rise_mb"] is not None, r
        assert f"[ok] accuracy {r['problem']} {r['label']}:" in p.stdout
    d5 = [r for r in rows if r["method"] == "dopri5"]
    assert d5 and all(r["status"] in ("ok", "failed", "skipped") for r in d5)  # (skipped: out of steps at a looser rtol)
    assert all(r["reason"] for r in d5 if r["status"] != "ok")
    for r in d5:
        if r["status"] == "failed":
            assert r["reason"] and f"{r['label']:<17} {r['rtol']:>7.0e} FAILED: {r['reason']}" in p.stdout
    loops = [r for r in res["batch"] if r["method"] == "radau loop"]
    assert len(loops) == 2 and all(r["status"] == "ok" and r["sets"] == 4 and r["err"] <= 10 for r in loops)
    from paramfittorchdemo import solvers
    implicit = getattr(solvers, "IMPLICIT_METHODS", ())
    for m in ("rodas5p", "rodas4", "auto"):  # the library's implicit methods, and 'auto', which hands stiff groups to one of them
        if m in implicit or (m == "auto" and implicit):
            assert [r["rtol"] for r in rows if r["method"] == m] == [1e-4, 1e-6]*2, m
            assert len([r for r in res["batch"] if r["method"] == m]) == 2, m
            for what in (f"speed robertson {m} at rtol 1e-06", f"batch pollution {m}, 4 sets"):  # a target line, [ok] or [MISS]
                assert any(line.startswith(("[ok] " + what, "[MISS] " + what)) for line in lines), what
        else: assert m in res["info"]["skipped"] and f"skipped {m}: " in p.stdout
    for r in rows + res["batch"]:  # every row is a number or a reason ('error': an exception other than a solver's, a bug somewhere)
        assert r["status"] in ("ok", "failed", "skipped") and (r["status"] == "ok" or r["reason"]), r
    assert importlib.util.find_spec("jax") is not None or "JAX/diffrax not installed" in p.stdout
    assert fig.stat().st_size > 10_000
