"""Intra-op threads on tiny tensors: torch's default thread count against the library's choice, on an idle and on a busy machine.

Fits work on tiny tensors, where torch's intra-op thread pool brings no speed and, when other processes compete for the
cores, makes every operation wait for threads that are not scheduled. The library runs small work on one thread
(`solvers.small_work_threads`, threshold `SMALL_WORK` in `solvers.explicit`) and restores the thread count afterwards. This
script times the same calls with that policy switched off (torch's default threads) and on, first on an idle machine, then
with one busy process per core running beside them, and prints the ratios, and the memory of each row's timed calls (both
thread settings; benchmarks/peak.py).

    python benchmarks/bench_threads.py            # medians of 3 (1 for calls over 5 s): about 5 minutes on a 2-core machine
    python benchmarks/bench_threads.py --quick    # one repeat
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time

import torch

import paramfittorchdemo.solvers.explicit as solvers  # the file that holds SMALL_WORK
from paramfittorchdemo import (HybridODE, LotkaVolterra, NeuralDiffEq, VDP, create_sim_dataset, estimate, fit, load_lynx_hare,
                               Param, train)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peak import NOTE, mb, peak_memory  # noqa: E402


def _spin(stop):
    "A competing load: one process that keeps a core busy with small numpy-free arithmetic until told to stop."
    x = 0
    while not stop.is_set():
        for i in range(10_000): x = (x*1103515245 + 12345) % 2147483648


def _workloads() -> dict:
    "name -> a function that runs one call of the library on a small problem."
    torch.manual_seed(0)
    lv = create_sim_dataset(LotkaVolterra(1.5, 1.0, 3.0, 1.0), torch.arange(0, 10, 0.1), num_samples=10, sigma_noise=0.1,
                            initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)
    vdp = create_sim_dataset(VDP(0.2), torch.linspace(0, 30, 100), num_samples=30, sigma_noise=0.1,
                             initial_conditions_default=torch.tensor([0.5, 0.1]), seed=0)
    hyb = create_sim_dataset(LotkaVolterra(1.3, 0.9, 1.8, 0.8), torch.linspace(0, 5, 41), num_samples=5, sigma_noise=0.01,
                             initial_conditions_default=torch.tensor([2.0, 1.5]), seed=0)
    lynx = load_lynx_hare()
    rates = {n: Param(positive=True) for n in ("alpha", "beta", "delta", "gamma")}
    steps = 30
    def hybrid():
        torch.manual_seed(0)
        m = HybridODE(LotkaVolterra(1.3, 0.9, 1.8, 0.8), hidden=32, train_known=False, scale=1.0)
        fit(m, hyb, optimizer="adam-lbfgs", adam_steps=steps, max_iter=steps)
    def neural():
        torch.manual_seed(0)
        train(NeuralDiffEq(2), vdp, epochs=3, lr=1e-3, batch_size=5, show_every=None, seed=0)
    return {
        "fit LV (LM)": lambda: fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv),
        "estimate lynx-hare": lambda: estimate(LotkaVolterra(0.5, 0.025, 0.8, 0.025), lynx, params=rates, loss="log", ic_positive=True),
        f"fit hybrid LV (adam-lbfgs, {steps}+{steps})": hybrid,
        "train neural ODE (the post's, 3 epochs)": neural,
    }


def _time(f, repeats: int) -> float:
    "Median wall time of `repeats` calls (one call when it takes more than 5 s)."
    out = []
    for _ in range(repeats):
        t = time.perf_counter(); f(); out.append(time.perf_counter() - t)
        if out[-1] > 5: break
    return statistics.median(out)


def run(quick: bool = False):
    work = _workloads()
    repeats = 1 if quick else 3
    small = solvers.SMALL_WORK
    cores = os.cpu_count() or 1
    print(f"torch {torch.__version__}, default intra-op threads {torch.get_num_threads()}, {cores} cores; medians of {repeats} "
          f"(1 for calls over 5 s)")
    print(NOTE + " (this process: the default-threads and the library's calls, after the warm-up)")
    print(f"{'workload':<40} {'machine':<16} {'default threads [s]':>20} {'library [s]':>12} {'ratio':>7} {'peak MB':>8} {'+MB':>6}")
    for load in (False, True):
        stop, procs = mp.Event(), []
        if load:
            procs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(cores)]
            for p in procs: p.start()
            time.sleep(0.5)
        try:
            for name, f in work.items():
                f()  # warm up (imports, first-call caches)
                with peak_memory() as mem:
                    solvers.SMALL_WORK = 0  # torch's own thread count for everything
                    t_default = _time(f, repeats)
                    solvers.SMALL_WORK = small  # the library's choice
                    t_lib = _time(f, repeats)
                where = f"busy ({cores} spinners)" if load else "idle"
                print(f"{name:<40} {where:<16} {t_default:>20.3f} {t_lib:>12.3f} {t_default/t_lib:>6.1f}x {mb(mem.peak_mb):>8} "
                      f"{mb(mem.rise_mb):>6}")
        finally:
            solvers.SMALL_WORK = small
            stop.set()
            for p in procs: p.join()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repeat")
    run(ap.parse_args().quick)
