"""Throughput of many independent fits: `fit_many` against a loop over `fit`, scipy's loop, and `fit_many` on Ray.

    python benchmarks/bench_many.py                  # LV (256 datasets), VDP and Lorenz (64 each); a few minutes on 2 CPU cores
    python benchmarks/bench_many.py --quick          # a smoke run: 16 datasets per system, loops on 4
    python benchmarks/bench_many.py --ray            # adds the Ray backend on a local instance (ray.init(num_cpus=CPU cores))
    python benchmarks/bench_many.py --device cuda    # adds a row for fit_many with the model on the GPU
    python benchmarks/bench_many.py --systems lv --n 1024 --loop-n 32 --json out.json

The datasets are bench_robust's families: `lv-post` is the issue's recipe (truth within +-20% of (1.5, 1.0, 3.0, 1.0),
ts = arange(0, 10, 0.1), 10 trajectories from initial states around (2.5, 2.5), sigma_noise=0.1, made by create_sim_dataset
as in the blog post, every fit from the post's start (1.6, 1.1, 2.7, 1.2)); `vdp` and `lorenz` draw truths within +-20% of
a nominal value, and every dataset starts from its own point 30% off its truth (random sign per parameter).

Rows (every method from the same starts, on the same datasets):
  fit_many        fit_many(model, datasets, starts=...): all datasets in one batch (chunk_size 256), default options;
  fit loop        a Python loop over fit(model, data) with default options (on the first --loop-n datasets);
  scipy loop      least_squares(method="lm", x_scale="jac") over solve_ivp(LSODA, rtol=1e-6, atol=1e-8), as bench_robust's
                  scipy (on the first --loop-n datasets);
  fit_many ray    the same fit_many call with backend="ray" on a local Ray instance (chunks of 256/CPU cores datasets, one
                  Ray task each), after one warm-up call that starts the workers; its parameters are compared with the local run's;
  fit_many cuda   the same call with the model on the GPU (--device cuda).
A fit succeeds when every parameter is within 10% of the truth. fits/s is datasets per second of wall-clock time.
peak MB is the resident-memory peak of this process while the row ran and +MB its rise over the row's start (benchmarks/peak.py;
the Ray workers' memory is not in it); the cuda row's note adds torch's peak CUDA allocation. --json writes them as peak_mb,
rise_mb, cuda_peak_mb.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_robust import TOL_10, make_families, make_problem, run_scipy, start_point  # noqa: E402
from peak import NOTE, mb, measure  # noqa: E402

from paramfittorchdemo.fitting import fit  # noqa: E402
from paramfittorchdemo.many import fit_many  # noqa: E402

SYSTEMS = {"lv": "lv-post", "vdp": "vdp", "lorenz": "lorenz"}  # short names; any family of bench_robust works too
DEFAULT_N = {"lv": 256, "vdp": 64, "lorenz": 64}  # others: 16


def problems(system: str, n: int, seed: int = 0, start: str = "30%") -> tuple:
    "The problems of a system, their starts (n, P) and truths (n, P)."
    fam = make_families()[SYSTEMS.get(system, system)]
    probs = [make_problem(fam, i, seed) for i in range(n)]
    kind = fam.start_kinds[0] if fam.post_start is not None else start
    starts = np.stack([start_point(p, kind) for p in probs])
    return fam, probs, starts, np.stack([p.truth for p in probs])


def success(params: np.ndarray, truth: np.ndarray) -> np.ndarray:
    "Per dataset, whether every parameter is within 10% of the truth."
    return np.all(np.abs(params - truth) <= TOL_10*np.abs(truth), axis=1)


def row(method: str, system: str, n: int, seconds: float, ok: np.ndarray, mem, note: str = "") -> dict:
    "A table row; mem: the Peak of the call that made it."
    return dict(method=method, system=system, datasets=n, seconds=seconds, fits_per_s=n/seconds, success=int(ok.sum()), **mem.as_dict(),
                note=note)


def run_fit_many(fam, probs, starts, truth, device: str = "cpu", **kw) -> tuple:
    "fit_many on every problem: (row fields, the ManyFits)."
    model = fam.model(starts[0]).to(device)
    data = [p.fit_data for p in probs]
    t = time.perf_counter()
    res = fit_many(model, data, starts=torch.as_tensor(starts), **kw)
    dt = time.perf_counter() - t
    names = list(fam.names)
    order = [res.names.index(nm) for nm in names] if set(names) <= set(res.names) else list(range(len(names)))
    return dt, success(res.params[:, order].numpy(), truth), res


def run_fit_loop(fam, probs, starts, truth) -> tuple:
    "A Python loop over fit."
    out = []
    t = time.perf_counter()
    for p, s in zip(probs, starts):
        model = fam.model(s)
        r = fit(model, p.fit_data)
        out.append([r.params[k] for k in fam.names])
    return time.perf_counter() - t, success(np.array(out), truth)


def run_scipy_loop(probs, starts, truth) -> tuple:
    "scipy's least_squares over solve_ivp, one dataset after another."
    out = []
    t = time.perf_counter()
    for p, s in zip(probs, starts):
        out.append(run_scipy(p, "fit", s)["params"])
    return time.perf_counter() - t, success(np.array(out), truth)


def format_table(rows: list) -> str:
    head = (f"| {'system':16s} | {'method':14s} | {'datasets':>8s} | {'seconds':>8s} | {'fits/s':>8s} | {'peak MB':>7s} | {'+MB':>5s} "
            f"| {'success (10%)':>13s} | note")
    lines = [head, "|" + "|".join("-"*(len(c) + 0) for c in head.split("|")[1:-1]) + "|------"]
    for r in rows:
        lines.append(f"| {r['system']:16s} | {r['method']:14s} | {r['datasets']:8d} | {r['seconds']:8.2f} | {r['fits_per_s']:8.2f} | "
                     f"{mb(r['peak_mb']):>7s} | {mb(r['rise_mb']):>5s} | "
                     f"{r['success']:>5d}/{r['datasets']:<4d} {100*r['success']/r['datasets']:3.0f}% | {r['note']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="lv,vdp,lorenz", help="comma-separated: lv, vdp, lorenz, or any family of bench_robust")
    ap.add_argument("--start", default="30%", choices=("30%", "2x"), help="start kind of the families (not lv): 30%% or 2x off the truth")
    ap.add_argument("--n", type=int, default=None, help="datasets per system (default: lv 256, vdp 64, lorenz 64)")
    ap.add_argument("--loop-n", type=int, default=None, help="datasets for the fit and scipy loops (default: 64, --quick 4)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 16 datasets per system, loops over 4")
    ap.add_argument("--ray", action="store_true", help="add the Ray backend on a local instance")
    ap.add_argument("--device", default=None, help="add a row with the model on this device (e.g. cuda)")
    ap.add_argument("--no-loops", action="store_true", help="skip the fit and scipy loops")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the rows to this file")
    a = ap.parse_args(argv)
    systems = a.systems.split(",")
    known = set(SYSTEMS) | set(make_families())
    if not set(systems) <= known: ap.error(f"unknown systems in {a.systems!r}; choose from {', '.join(sorted(known))}")
    loop_n = a.loop_n or (4 if a.quick else 64)
    cores = os.cpu_count() or 1
    if a.ray:
        import ray
        ray.init(num_cpus=cores, log_to_driver=False)
    rows, t0 = [], time.perf_counter()
    for system in systems:
        n = a.n or (16 if a.quick else DEFAULT_N.get(system, 16))
        fam, probs, starts, truth = problems(system, n, a.seed, a.start)
        (dt, ok, local), mem = measure(run_fit_many, fam, probs, starts, truth)
        rows.append(row("fit_many", system, n, dt, ok, mem, ", ".join(f"{local.status.count(s)} {s}" for s in sorted(set(local.status)))))
        print(format_table(rows[-1:]), file=sys.stderr)
        if not a.no_loops:
            m = min(loop_n, n)
            (dt, ok), mem = measure(run_fit_loop, fam, probs[:m], starts[:m], truth[:m])
            rows.append(row("fit loop", system, m, dt, ok, mem))
            (dt, ok), mem = measure(run_scipy_loop, probs[:m], starts[:m], truth[:m])
            rows.append(row("scipy loop", system, m, dt, ok, mem))
        if a.ray:
            chunk = max(1, -(-n//cores))
            run_fit_many(fam, probs[:cores], starts[:cores], truth[:cores], backend="ray", chunk_size=1)  # start the workers
            (dt, ok, rr), mem = measure(run_fit_many, fam, probs, starts, truth, backend="ray", chunk_size=chunk)
            dt_l, _, loc = run_fit_many(fam, probs, starts, truth, chunk_size=chunk)
            diff = float((rr.params - loc.params).abs().max())
            rows.append(row("fit_many ray", system, n, dt, ok, mem,
                            f"{cores} tasks of {chunk}; local with the same chunks {dt_l:.2f} s (ray overhead {100*(dt/dt_l - 1):+.0f}%); "
                            f"max |ray - local| {diff:.1e}; peak MB: this process only"))
        if a.device:
            run_fit_many(fam, probs[:4], starts[:4], truth[:4], device=a.device)  # warm-up: kernels, allocator
            on_cuda = a.device.startswith("cuda")
            (dt, ok, _), mem = measure(run_fit_many, fam, probs, starts, truth, device=a.device, cuda=on_cuda)
            rows.append(row(f"fit_many {a.device}", system, n, dt, ok, mem, f"cuda peak {mb(mem.cuda_peak_mb)} MB" if on_cuda else ""))
        print(format_table(rows[-1:]), file=sys.stderr)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cores} CPU cores; {time.perf_counter() - t0:.0f} s in all")
    print(NOTE)
    print(format_table(rows))
    if a.json:
        with open(a.json, "w") as f: json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
