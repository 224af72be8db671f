"""Side-by-side timing of four ways to fit the post's three problems, measured in one run on the same data.

    python benchmarks/bench_fit.py            # full table (a few minutes on 2 CPU cores)
    python benchmarks/bench_fit.py --quick    # reduced sizes, for CI (checks correctness, not time)

Rows per problem:
  reference  the post's training loop, reimplemented faithfully (DataLoader, Adam, MSELoss, torchdiffeq rk4)
  train      this library's `train` with the same arguments and seed (must end at the same parameters, to 1e-5)
  fit        this library's `fit` (Levenberg-Marquardt, float64), with method='dopri5' and with the default method='auto'
             (dopri5 watching for stiffness: these problems are not stiff, so it should cost at most 10% more)
  scipy      scipy.optimize.least_squares over solve_ivp (LSODA), all trajectories in one system, same tolerances;
             the baseline for the ratios is the fastest scipy configuration that reached scipy's best loss
Times are medians of repeated runs after a warm-up, single-threaded, all in this process; peak MB and +MB are the resident
memory's peak during a row's timed runs and its rise over the start of them (benchmarks/peak.py).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares
from torch.utils.data import DataLoader
from torchdiffeq import odeint

from paramfittorchdemo import Lorenz, LotkaVolterra, VDP, create_sim_dataset, train
from paramfittorchdemo.fitting import fit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peak import NOTE, mb, peak_memory  # noqa: E402

RTOL, ATOL = 1e-6, 1e-8

PROBLEMS = {
    "vdp": dict(true=lambda: VDP(0.30), start=lambda: VDP(0.10), truth=[0.30],
                data=dict(ts=torch.linspace(0.0, 10.0, 10), num_samples=10, sigma_noise=0.01),
                train=dict(lr=1e-2, batch_size=5, method="rk4", step_size=0.1), epochs=50,
                rhs=lambda p, x, y: (p[0]*(x - x**3/3 - y), x/p[0])),
    "lotka-volterra": dict(true=lambda: LotkaVolterra(1.5, 1.0, 3.0, 1.0), start=lambda: LotkaVolterra(1.6, 1.1, 2.7, 1.2),
                           truth=[1.5, 1.0, 3.0, 1.0],
                           data=dict(ts=torch.arange(0.0, 10.0, 0.1), num_samples=10, sigma_noise=0.1,
                                     initial_conditions_default=torch.tensor([2.5, 2.5])),
                           train=dict(lr=1e-2, batch_size=5, method="rk4", step_size=0.1), epochs=60,
                           rhs=lambda p, x, y: (p[0]*x - p[1]*x*y, -p[2]*y + p[3]*x*y)),
    "lorenz": dict(true=lambda: Lorenz(10.0, 28.0, 8.0/3.0), start=lambda: Lorenz(10.2, 28.2, 9.0/3), truth=[10.0, 28.0, 8.0/3.0],
                   data=dict(ts=torch.arange(0, 10.0, 0.05), num_samples=30, sigma_noise=0.01,
                             initial_conditions_default=torch.tensor([1.0, 0.0, 0.0]), sigma_initial_conditions=0.10),
                   train=dict(lr=1e-3, batch_size=5, method="rk4", step_size=0.05), epochs=300,
                   rhs=lambda p, x, y, z: (p[0]*(y - x), x*(p[1] - z) - y, x*y - p[2]*z)),
}


def params_of(model):
    return model.mu.detach().reshape(1).tolist() if isinstance(model, VDP) else model.model_params.detach().tolist()


def rel_err(p, truth):
    return max(abs(a - b)/abs(b) for a, b in zip(p, truth))


def reference_train(model, data, epochs, lr, batch_size, method, step_size, seed):
    "The post's loop, as written there (printing and plotting aside); returns the last epoch's summed mini-batch loss (the printed number)."
    trainloader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = torch.nn.MSELoss()
    for epoch in range(epochs):
        running_loss = 0.0
        for batchdata in trainloader:
            optimizer.zero_grad()
            ts, states = batchdata
            initial_state = states[:, 0, :]
            pred = odeint(model, initial_state, ts[0], method=method, options={'step_size': step_size}).transpose(0, 1)
            loss = criterion(pred, states)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    return running_loss


def _residuals(spec, data, rtol: float, atol: float):
    "residuals(p): one solve_ivp(LSODA) of all trajectories stacked into one system, minus the data, flattened."
    ts, ys = data.tensors()
    ts, ys = ts.double().numpy(), ys.double().numpy()  # (time,), (batch, time, state)
    B, T, n = ys.shape
    y0 = ys[:, 0, :].T.reshape(-1)  # state-major: x of all trajectories, then y, ...
    def f(t, u, p):
        return np.concatenate(spec["rhs"](p, *u.reshape(n, B)))
    def residuals(p):
        sol = solve_ivp(f, (ts[0], ts[-1]), y0, method="LSODA", t_eval=ts, rtol=rtol, atol=atol, args=(p,))
        if not sol.success or sol.y.shape[1] != T: return np.full(ys.size, 1e6)
        pred = sol.y.reshape(n, B, T).transpose(1, 2, 0)
        return (pred - ys).reshape(-1)
    return residuals


def scipy_fit(spec, data, x0, method, diff_step=None):
    "least_squares over one solve_ivp(LSODA) of all trajectories stacked into one system."
    res, calls = _residuals(spec, data, RTOL, ATOL), [0]
    def counted(p):
        calls[0] += 1
        return res(p)
    r = least_squares(counted, np.array(x0, dtype=float), method=method, x_scale="jac", diff_step=diff_step)
    return list(r.x), calls[0], float(np.mean(r.fun**2))


def common_mse(spec, data, p) -> float:
    "The mean squared residual at parameters p by one accurate evaluator (LSODA at rtol 1e-10), the same for every method."
    return float(np.mean(_residuals(spec, data, 1e-10, 1e-12)(np.asarray(p, dtype=float))**2))


def timed(fn, repeats):
    "(median time, last result, Peak of the timed runs) of `repeats` runs after a warm-up."
    fn()  # warm-up
    times, out = [], None
    with peak_memory() as mem:
        for _ in range(repeats):
            t0 = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t0)
    return statistics.median(times), out, mem


def run(quick: bool):
    torch.set_num_threads(1)
    rows, checks = [], []
    for name, spec in PROBLEMS.items():
        data = create_sim_dataset(spec["true"](), seed=0, **spec["data"])
        start = params_of(spec["start"]())
        epochs = 3 if quick else (spec["epochs"] if name != "lorenz" else 20)
        reps = 1 if quick else 3
        # the post's recipe: reference loop vs this library's train, same seed and epochs
        def ref():
            m = spec["start"](); reference_train(m, data, epochs, seed=0, **spec["train"]); return params_of(m)
        def lib():
            m = spec["start"](); train(m, data, epochs=epochs, seed=0, show_every=None, **spec["train"]); return params_of(m)
        t_ref, p_ref, m_ref = timed(ref, reps)
        t_lib, p_lib, m_lib = timed(lib, reps)
        same = max(abs(a - b) for a, b in zip(p_ref, p_lib))
        rows.append((name, f"reference loop ({epochs} ep)", t_ref, t_ref/epochs*1e3, "", rel_err(p_ref, spec["truth"]), "", m_ref))
        rows.append((name, f"train ({epochs} ep)", t_lib, t_lib/epochs*1e3, "", rel_err(p_lib, spec["truth"]),
                     f"{t_ref/t_lib:.1f}x faster/epoch, |dp|={same:.1e}", m_lib))
        checks.append((f"{name}: train matches the reference loop to 1e-5", same < 1e-5))
        # full-batch least squares: scipy vs fit
        # scipy's default finite-difference step (1.5e-8) is below the solver's noise at rtol=1e-6; 1e-3 is the usual fix
        sp = []
        for meth, ds in (("lm", None), ("lm", 1e-3), ("trf", 1e-3)):
            t_sp, (p_sp, ncalls, cost), m_sp = timed(lambda: scipy_fit(spec, data, start, meth, ds), reps)
            sp.append((t_sp, p_sp, cost))
            rows.append((name, f"scipy {meth}, diff_step={ds}", t_sp, None, f"{ncalls} solves", rel_err(p_sp, spec["truth"]),
                         f"mse {cost:.6g}", m_sp))
        best_cost = min(c for _, _, c in sp)
        best_sp = min((x for x in sp if x[2] <= best_cost*(1 + 1e-6)), key=lambda x: x[0])  # fastest scipy run that reached the optimum
        def lm(method="auto"):
            m = spec["start"](); r = fit(m, data, rtol=RTOL, atol=ATOL, method=method); return r
        t_d5, res_d5, m_d5 = timed(lambda: lm("dopri5"), reps)  # the explicit method by name, to price 'auto' (the default)
        t_fit, res, m_fit = timed(lm, reps)
        t_d5 = min(t_d5, timed(lambda: lm("dopri5"), reps)[0])  # (interleaved: dopri5, auto, dopri5, best of both dopri5 runs)
        p_fit = list(res.params.values())
        to_scipy = rel_err(p_fit, best_sp[1])
        rows.append((name, "fit (LM, dopri5)", t_d5, None, f"{res_d5.stats.solves} solves, {res_d5.stats.nfe} f-evals",
                     rel_err(list(res_d5.params.values()), spec["truth"]), f"{t_d5/best_sp[0]:.2f}x scipy's time", m_d5))
        rows.append((name, "fit (LM, auto: the default)", t_fit, None, f"{res.stats.solves} solves, {res.stats.nfe} f-evals",
                     rel_err(p_fit, spec["truth"]), f"{t_fit/best_sp[0]:.2f}x scipy's time, {t_fit/t_d5:.2f}x dopri5's, "
                     f"{to_scipy:.1e} from scipy's optimum", m_fit))
        if not quick:
            checks.append((f"{name}: fit with method='auto' at most 1.1x its time with 'dopri5' (not stiff)", t_fit <= 1.1*t_d5))
        checks.append((f"{name}: fit reaches scipy's optimum (rel. change < 1e-3)", to_scipy < 1e-3))
        lowest = min(common_mse(spec, data, p) for _, p, _ in sp)  # scipy's variants stop at slightly different points of a flat optimum
        checks.append((f"{name}: fit's loss <= scipy's lowest (+1e-6, one accurate evaluator)",
                       common_mse(spec, data, p_fit) <= lowest*(1 + 1e-6)))
        if not quick:
            checks.append((f"{name}: fit at most 1.0x scipy's time", t_fit <= best_sp[0]))
            checks.append((f"{name}: train at least 3x faster per epoch", t_ref/t_lib >= 3))
    # multi-start on Lotka-Volterra
    spec = PROBLEMS["lotka-volterra"]
    data = create_sim_dataset(spec["true"](), seed=0, **spec["data"])
    K = 4 if quick else 32
    gen = torch.Generator().manual_seed(1)
    starts = torch.tensor(spec["truth"], dtype=torch.float64)*(0.7 + 0.6*torch.rand(K, 4, generator=gen, dtype=torch.float64))
    def one_by_one():  # the loop a user would write without populations
        return [fit(spec["start"](), data, starts=starts[k:k + 1]) for k in range(K)]
    t_seq, singles, m_seq = timed(one_by_one, 1)
    tK, rK, m_K = timed(lambda: fit(spec["start"](), data, starts=starts), 1 if quick else 3)
    t1 = t_seq/K
    best = min(r.loss for r in singles)
    n_single = sum(r.loss < best*1.001 for r in singles)
    nconv = int((rK.starts["loss"] < rK.starts["loss"].min()*1.001).sum())
    rows.append(("lotka-volterra", f"fit, {K} starts one by one", t_seq, None, f"{sum(r.stats.solves for r in singles)} solves",
                 min(rel_err(list(r.params.values()), spec["truth"]) for r in singles),
                 f"{t1:.3f} s per start; {n_single}/{K} reached the best loss", m_seq))
    rows.append(("lotka-volterra", f"fit, {K} starts together", tK, None, f"{rK.stats.solves} solves",
                 rel_err(list(rK.params.values()), spec["truth"]),
                 f"{tK/t1:.2f}x one start, {t_seq/tK:.1f}x faster than one by one; {nconv}/{K} reached the best loss", m_K))
    if not quick: checks.append((f"{K} starts together in at most 4x the mean time of one start", tK <= 4*t1))
    return rows, checks


def print_table(rows, checks):
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); tolerances rtol={RTOL}, atol={ATOL}")
    print(NOTE)
    print(f"{'problem':<15} {'method':<28} {'time [s]':>9} {'ms/epoch':>9} {'peak MB':>8} {'+MB':>6} {'work':>26} "
          f"{'max rel err':>12}  note")
    for p, m, t, per, work, err, note, mem in rows:
        print(f"{p:<15} {m:<28} {t:>9.3f} {'' if per is None else f'{per:.1f}':>9} {mb(mem.peak_mb):>8} {mb(mem.rise_mb):>6} {work:>26} "
              f"{err:>12.2e}  {note}")
    print()
    for what, ok in checks: print(f"[{'ok' if ok else 'FAIL'}] {what}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes (CI)")
    a = ap.parse_args()
    rows, checks = run(a.quick)
    print_table(rows, checks)
    sys.exit(0 if all(ok for _, ok in checks) else 1)
