"""GPU check and timings (run on a CUDA machine): the same fits on CPU and CUDA, and torch.compile on a neural ODE.

    python benchmarks/bench_cuda.py

Memory of the timed call (benchmarks/peak.py): the host's resident-memory peak while it ran (CPU and CUDA runs), and on CUDA
torch's peak allocation on the device (torch.cuda.max_memory_allocated after reset_peak_memory_stats; the CUDA context is not in it).
"""
import os
import sys
import time

import torch

from paramfittorchdemo import LotkaVolterra, NeuralDiffEq, VDP, create_sim_dataset, train
from paramfittorchdemo.fitting import fit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peak import NOTE, mb, peak_memory  # noqa: E402


def timed(fn, cuda: bool = False):
    "(seconds, result, Peak) of one call after a warm-up; cuda: also torch's peak CUDA allocation."
    fn()
    with peak_memory(cuda) as mem:
        t0 = time.perf_counter(); out = fn()
        if torch.cuda.is_available(): torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    return dt, out, mem


def main():
    assert torch.cuda.is_available(), "needs CUDA"
    print(torch.__version__, torch.cuda.get_device_name(0))
    lv = create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 10.0, 0.1), initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)
    gen = torch.Generator().manual_seed(1)
    starts = torch.tensor([1.5, 1.0, 3.0, 1.0], dtype=torch.float64)*(0.7 + 0.6*torch.rand(32, 4, generator=gen, dtype=torch.float64))
    print(NOTE)
    print(f"{'case':<44} {'cpu [s]':>9} {'cuda [s]':>9} {'cpu: peak MB':>12} {'+MB':>6} {'cuda: host MB':>13} {'+MB':>6} {'GPU MB':>7}")
    for name, fn in [("fit LV, 1 start (LM)", lambda dev: fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2).to(dev), lv)),
                     ("fit LV, 32 starts (LM)", lambda dev: fit(LotkaVolterra().to(dev), lv, starts=starts)),
                     ("train LV, post recipe, 10 epochs",
                      lambda dev: train(LotkaVolterra(1.6, 1.1, 2.7, 1.2).to(dev), lv, epochs=10, show_every=None, seed=0))]:
        tc, rc, mc = timed(lambda: fn("cpu")); tg, rg, mg = timed(lambda: fn("cuda"), cuda=True)
        print(f"{name:<44} {tc:>9.3f} {tg:>9.3f} {mb(mc.peak_mb):>12} {mb(mc.rise_mb):>6} {mb(mg.peak_mb):>13} {mb(mg.rise_mb):>6} "
              f"{mb(mg.cuda_peak_mb):>7}")
    nd = create_sim_dataset(VDP(0.2), torch.linspace(0, 10, 30), num_samples=10, sigma_noise=0.05, seed=0)
    for comp in (False, True):
        torch.manual_seed(0); m = NeuralDiffEq(2).cuda()
        with peak_memory(cuda=True) as mem:
            t0 = time.perf_counter(); r = fit(m, nd, adam_steps=200, max_iter=50, compile=comp); torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        print(f"neural ODE fit on cuda, compile={comp}: total {dt:.1f} s, compile {r.compile_seconds}, loss {r.loss:.4g}, "
              f"{r.stats.solves} solves; peak MB host {mb(mem.peak_mb)} (+{mb(mem.rise_mb)}), GPU {mb(mem.cuda_peak_mb)}")


if __name__ == "__main__":
    main()
