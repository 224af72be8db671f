"""This library's `fit` against diffrax + optimistix (JAX) and scipy on the post's three problems, and the neural-ODE epoch time.

    python benchmarks/bench_anchor.py                        # full run: vdp, lv, lorenz, 7 warm reps (several minutes on 2 cores)
    python benchmarks/bench_anchor.py --quick                # CI smoke test (numbers not meaningful): 1 rep, no warm-ups,
                                                             # one first-call process, scipy lm diff_step=1e-3, 1 neural-ODE epoch
    python benchmarks/bench_anchor.py --problems vdp,lv --reps 3 --nde-epochs 2 --json anchor.json
    python benchmarks/bench_anchor.py --threads 0            # every library on its default threads (default: 1 thread each)

The JAX rows need the bench extra (pip install paramfittorchdemo[bench]); without JAX they are skipped, with a note.

The problems and their data are bench_fit.py's: VDP mu=0.30 from 0.10, Lotka-Volterra (1.5, 1, 3, 1) from (1.6, 1.1, 2.7, 1.2),
Lorenz (10, 28, 8/3) from (10.2, 28.2, 3.0), each `create_sim_dataset(true model, seed=0, ...)`. Every method fits the same
least-squares problem: all trajectories, each started from its first data point, float64, residuals pred - data at every time point,
ODE tolerances rtol=1e-6, atol=1e-8:
  library  `fit(model, data, rtol=1e-6, atol=1e-8)`: Levenberg-Marquardt over dopri5 (a fresh model for every call)
  diffrax  optimistix.least_squares(LevenbergMarquardt(rtol=atol=--lm-tol)) over diffrax.diffeqsolve(Dopri5, PIDController,
           SaveAt(ts)), vmapped over the trajectories, forward-mode derivatives (diffrax.ForwardMode), the whole fit in one jax.jit;
           warm calls reuse the compiled function on the same inputs. --lm-tol 1e-5 (default) stops at the same iterate as 1e-8
           does (to 1e-8 relative, on all three problems) in fewer steps: smaller tolerances only add rejected steps
  scipy    least_squares over one solve_ivp(LSODA) of all trajectories stacked, as bench_fit.py; of its three configurations
           (lm, lm with diff_step=1e-3, trf with diff_step=1e-3) the fastest that reached scipy's best loss (one timed call each)

Columns:
  first call   a fresh Python process per (problem, method), timed inside it from before the method's imports (torch and
               paramfittorchdemo / jax, diffrax, optimistix and numpy / numpy and scipy) to the end of its first fit, compiling
               included; the data are read from a file before the clock starts (data simulation excluded for every method)
  imports      of the first-call process: the seconds its imports took; first fit: the seconds of its first fit call after them
               (diffrax's tracing and compiling happen there), which the first/diffrax and first/scipy ratios compare
  warm         the median of --reps calls in this process after one warm-up call each, the methods interleaved rep by rep
  x diffrax    warm time over diffrax's warm time; first/diffrax and first/scipy: first fit over theirs
  |dp|/p opt   max relative distance of the fitted parameters to the least-squares optimum; loss/opt-1: the loss there over the
               optimum's, minus 1. Both losses by one accurate evaluator (LSODA, rtol 1e-10); the optimum is scipy least_squares
               (trf, 3-point, tolerances 1e-12) on that evaluator, started from the best of the methods' results. The optimum is
               only as sharp as the evaluators: distances under ~1e-6 and loss ratios under ~1e-8 are all "at the optimum"
  first MB     the first-call process's resident-memory peak over its whole life (VmHWM read by the process itself at its end:
               interpreter, imports, data and first fit)
  peak MB, +MB the resident-memory peak of this process during the method's warm calls and its rise over their start (the largest
               over the reps; benchmarks/peak.py); the neural-ODE table has the same two columns for its timed runs
Neural ODE: the post's recipe (VDP mu=0.20, 30 trajectories x 100 points on [0, 30], NeuralDiffEq(dim=2) after manual_seed(1),
Adam lr 1e-3, batch 5, rk4 step 0.1, seed 0), the post's loop (torchdiffeq, DataLoader, MSELoss) against this library's `train`:
ms per epoch (median of interleaved runs of --nde-epochs epochs after a 1-epoch warm-up), torch on its default threads (--nde-threads
to change; on a loaded machine the default threads can make the post's loop tens of times slower, the library drops to one thread
for small work).
Targets are printed (ok / MISS); the exit code is 1 only when something failed or the library's loss exceeds the optimum's by more
than 1e-4 plus the best other method's excess (the ODE tolerance's floor: ~1e-3 for every method on the chaotic Lorenz problem).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peak import MB, NOTE, mb, peak_memory, process_peak_bytes, worst  # noqa: E402

RTOL, ATOL = 1e-6, 1e-8
LOSS_SLACK = 1e-4  # the library's loss may exceed the optimum's by this fraction before the run fails
JAX_NOTE = "JAX/diffrax not installed: pip install paramfittorchdemo[bench]"
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
SCIPY_CONFIGS = (("lm", None), ("lm", 1e-3), ("trf", 1e-3))
MARK = "BENCH_ANCHOR_JSON "

PROBLEMS = {  # bench_fit.py's problems, written without torch so that the first-call processes import only their own libraries
    "vdp": dict(model="VDP", true=[0.30], start=[0.10], ode_max_steps=100_000,
                data=dict(ts=("linspace", 0.0, 10.0, 10), num_samples=10, sigma_noise=0.01),
                rhs=lambda p, x, y: (p[0]*(x - x**3/3 - y), x/p[0])),
    "lv": dict(model="LotkaVolterra", true=[1.5, 1.0, 3.0, 1.0], start=[1.6, 1.1, 2.7, 1.2], ode_max_steps=100_000,
               data=dict(ts=("arange", 0.0, 10.0, 0.1), num_samples=10, sigma_noise=0.1, initial_conditions_default=[2.5, 2.5]),
               rhs=lambda p, x, y: (p[0]*x - p[1]*x*y, -p[2]*y + p[3]*x*y)),
    "lorenz": dict(model="Lorenz", true=[10.0, 28.0, 8.0/3.0], start=[10.2, 28.2, 9.0/3], ode_max_steps=100_000,
                   data=dict(ts=("arange", 0.0, 10.0, 0.05), num_samples=30, sigma_noise=0.01,
                             initial_conditions_default=[1.0, 0.0, 0.0], sigma_initial_conditions=0.10),
                   rhs=lambda p, x, y, z: (p[0]*(y - x), x*(p[1] - z) - y, x*y - p[2]*z)),
}


# ---------------------------------------------------------------- data (torch, in the parent only)
def make_data(spec: dict) -> tuple:
    "The problem's data by bench_fit.py's recipe, as plain lists: ts (T,), ys (batch, T, state), float32 values."
    import torch
    import paramfittorchdemo as pf
    kw = dict(spec["data"])
    kind, *args = kw.pop("ts")
    if "initial_conditions_default" in kw: kw["initial_conditions_default"] = torch.tensor(kw["initial_conditions_default"])
    data = pf.create_sim_dataset(getattr(pf, spec["model"])(*spec["true"]), ts=getattr(torch, kind)(*args), seed=0, **kw)
    ts, ys = data.tensors()
    return ts.tolist(), ys.tolist()


def start32(spec: dict):
    "The starting parameters as the library sees them (float32 model parameters, widened): every method starts there."
    import numpy as np
    return np.asarray(spec["start"], dtype=np.float32).astype(np.float64)


# ---------------------------------------------------------------- the three methods: X_runner does the imports, its run() one fit
def library_runner(spec: dict, ts: list, ys: list, threads: int, **_):
    "Import torch and the library; run() fits a fresh model."
    import torch
    import paramfittorchdemo as pf
    from paramfittorchdemo.fitting import fit
    if threads == 1: torch.set_num_threads(1)
    data = pf.SimODEData(torch.tensor(ts, dtype=torch.float32), list(torch.tensor(ys, dtype=torch.float32)))
    def run() -> dict:
        r = fit(getattr(pf, spec["model"])(*spec["start"]), data, rtol=RTOL, atol=ATOL)
        return dict(params=list(r.params.values()), status=r.status, note=f"{r.status}, {r.iterations} it, {r.stats.solves} solves")
    return run


def diffrax_runner(spec: dict, ts: list, ys: list, lm_tol: float, **_):
    "Import JAX, diffrax and optimistix and build the jitted fit (compiled on its first call); run() calls it."
    import jax
    jax.config.update("jax_enable_x64", True)
    import diffrax
    import jax.numpy as jnp
    import optimistix as optx
    term = diffrax.ODETerm(lambda t, y, p: jnp.stack(spec["rhs"](p, *y)))
    def solve(p, y0, ts):  # one trajectory: (T, state)
        return diffrax.diffeqsolve(term, diffrax.Dopri5(), ts[0], ts[-1], None, y0, args=p, saveat=diffrax.SaveAt(ts=ts),
                                   stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL), max_steps=spec["ode_max_steps"],
                                   adjoint=diffrax.ForwardMode()).ys
    def residuals(p, args):
        ts, ys = args
        return (jax.vmap(solve, in_axes=(None, 0, None))(p, ys[:, 0, :], ts) - ys).reshape(-1)
    @jax.jit
    def fit(p0, ts, ys):
        sol = optx.least_squares(residuals, optx.LevenbergMarquardt(rtol=lm_tol, atol=lm_tol), p0, args=(ts, ys),
                                 max_steps=256, throw=False)
        return sol.value, sol.result == optx.RESULTS.successful, sol.stats["num_steps"]
    inputs = jnp.asarray(start32(spec)), jnp.asarray(ts, dtype=jnp.float64), jnp.asarray(ys, dtype=jnp.float64)
    def run() -> dict:
        value, ok, steps = jax.block_until_ready(fit(*inputs))
        return dict(params=[float(v) for v in value], status="converged" if bool(ok) else "failed",
                    note=f"{'converged' if bool(ok) else 'NOT converged'}, {int(steps)} steps")
    return run


def np_residuals(spec: dict, ts, ys, rtol: float, atol: float):
    "bench_fit.py's residuals(p): one solve_ivp(LSODA) of all trajectories stacked into one system, minus the data, flattened."
    import numpy as np
    from scipy.integrate import solve_ivp
    ts, ys = np.asarray(ts, dtype=float), np.asarray(ys, dtype=float)
    B, T, n = ys.shape
    y0 = ys[:, 0, :].T.reshape(-1)  # state-major: x of all trajectories, then y, ...
    def f(t, u, p):
        return np.concatenate(spec["rhs"](p, *u.reshape(n, B)))
    def residuals(p):
        sol = solve_ivp(f, (ts[0], ts[-1]), y0, method="LSODA", t_eval=ts, rtol=rtol, atol=atol, args=(p,))
        if not sol.success or sol.y.shape[1] != T: return np.full(ys.size, 1e6)
        return (sol.y.reshape(n, B, T).transpose(1, 2, 0) - ys).reshape(-1)
    return residuals


def scipy_runner(spec: dict, ts: list, ys: list, scipy_config: tuple = ("lm", 1e-3), **_):
    "Import numpy and scipy; run() is bench_fit.py's scipy_fit in the given (method, diff_step) configuration."
    import numpy as np
    from scipy.optimize import least_squares
    res, (method, diff_step) = np_residuals(spec, ts, ys, RTOL, ATOL), scipy_config
    def run() -> dict:
        calls = [0]
        def counted(p):
            calls[0] += 1
            return res(p)
        r = least_squares(counted, start32(spec), method=method, x_scale="jac", diff_step=diff_step)
        return dict(params=[float(v) for v in r.x], status="converged" if r.status > 0 else "failed", cost=float(np.mean(r.fun**2)),
                    note=f"{method}, diff_step={diff_step}, {calls[0]} solves")
    return run


RUNNERS = {"library": library_runner, "diffrax": diffrax_runner, "scipy": scipy_runner}


# ---------------------------------------------------------------- first call, in a fresh process
def first_call_child(a) -> None:
    "Inside the subprocess: time the method's imports and its first fit, print one JSON line."
    with open(a.data_file) as fh: d = json.load(fh)
    t0 = time.perf_counter()
    run = RUNNERS[a.first[0]](PROBLEMS[a.first[1]], d["ts"], d["ys"], threads=a.threads, lm_tol=a.lm_tol,
                              scipy_config=tuple(d["scipy_config"]))
    t1 = time.perf_counter()
    before = process_peak_bytes()  # the peak of the interpreter, the imports and the data, before peak_memory resets it
    with peak_memory() as mem:
        out = run()
    t2 = time.perf_counter()
    print(MARK + json.dumps(dict(seconds=t2 - t0, imports=t1 - t0, fit=t2 - t1, params=out["params"], status=out["status"],
                                 peak_mb=max(before, mem.peak)/MB, fit_peak_mb=mem.peak_mb, fit_rise_mb=mem.rise_mb)))


def first_call(method: str, problem: str, ts: list, ys: list, scipy_config: tuple, a) -> dict:
    "Run the first-call subprocess; its numbers and its whole wall time."
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(dict(ts=ts, ys=ys, scipy_config=list(scipy_config)), fh)
    cmd = [sys.executable, os.path.abspath(__file__), "--first", method, problem, "--data-file", fh.name,
           "--threads", str(a.threads), "--lm-tol", str(a.lm_tol)]
    try:
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - t0
    finally:
        os.unlink(fh.name)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(MARK)]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"first call of {method} on {problem} failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}")
    return dict(json.loads(lines[-1][len(MARK):]), process=wall)


# ---------------------------------------------------------------- accuracy
def mse(residuals, p) -> float:
    import numpy as np
    return float(np.mean(residuals(np.asarray(p, dtype=float))**2))


def reference_optimum(spec: dict, ts: list, ys: list, candidates: list) -> tuple:
    "The least-squares optimum by the accurate evaluator (LSODA rtol 1e-10), polished by scipy from the best candidate."
    from scipy.optimize import least_squares
    res = np_residuals(spec, ts, ys, 1e-10, 1e-12)
    best = min(candidates, key=lambda p: mse(res, p))
    r = least_squares(res, best, method="trf", jac="3-point", diff_step=5e-4, x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    p, loss = (list(map(float, r.x)), mse(res, r.x)) if mse(res, r.x) <= mse(res, best) else (list(best), mse(res, best))
    return p, loss, res


def rel_dist(p, q) -> float:
    return max(abs(a - b)/abs(b) for a, b in zip(p, q))


# ---------------------------------------------------------------- one problem: scipy's configuration, first calls, warm, accuracy
def pick_scipy_config(spec: dict, ts: list, ys: list, warm_up: bool) -> tuple:
    "bench_fit.py's rule: the fastest configuration that reached scipy's best loss (one timed call each, after one warm-up)."
    runs = []
    for i, cfg in enumerate(SCIPY_CONFIGS):
        run = scipy_runner(spec, ts, ys, scipy_config=cfg)
        if i == 0 and warm_up: run()
        t0 = time.perf_counter(); out = run(); runs.append((time.perf_counter() - t0, out["cost"], cfg))
    best = min(c for _, c, _ in runs)
    return min((r for r in runs if r[1] <= best*(1 + 1e-6)), key=lambda r: r[0])[2]


def warm_times(runners: dict, reps: int, warm_up: bool) -> tuple:
    """One warm-up call each (--quick: none), then reps rounds, the methods interleaved; per method the times, the last result and
    the Peak of its timed calls (the largest over the reps)."""
    last = {m: run() for m, run in runners.items()} if warm_up else {}
    times, mems = {m: [] for m in runners}, {m: [] for m in runners}
    for _ in range(reps):
        for m, run in runners.items():
            with peak_memory() as mem:
                t0 = time.perf_counter(); last[m] = run(); times[m].append(time.perf_counter() - t0)
            mems[m].append(mem)
    return times, last, {m: worst(ms) for m, ms in mems.items()}


def first_calls(name: str, methods: list, ts: list, ys: list, cfg: tuple, a, errors: list) -> dict:
    "The first-call subprocesses, one method after the other; a failure is recorded in errors and the others go on."
    out = {}
    for m in methods:
        try:
            out[m] = first_call(m, name, ts, ys, cfg, a)
        except Exception as e:
            errors.append(f"{name}: {type(e).__name__}: {e}")
    return out


def bench_problem(name: str, methods: list, first_methods: list, a, errors: list) -> dict:
    "One problem: scipy's configuration, the first calls, the warm interleaved calls, and the accuracy of each method."
    spec = PROBLEMS[name]
    ts, ys = make_data(spec)
    cfg = ("lm", 1e-3) if a.quick else pick_scipy_config(spec, ts, ys, warm_up=True)
    first = first_calls(name, first_methods, ts, ys, cfg, a, errors)
    runners = {m: RUNNERS[m](spec, ts, ys, threads=a.threads, lm_tol=a.lm_tol, scipy_config=cfg) for m in methods}
    times, last, mems = warm_times(runners, a.reps, not a.quick)
    opt, opt_loss, res = reference_optimum(spec, ts, ys, [out["params"] for out in last.values()])
    rows = {}
    for m in methods:
        p = last[m]["params"]
        f = first.get(m)
        note = last[m]["note"] + ("" if f is None else f"; first: imports {f['imports']:.2f} s + fit {f['fit']:.2f} s")
        rows[m] = dict(warm=statistics.median(times[m]), warm_times=times[m], params=p, status=last[m]["status"], note=note,
                       dist=rel_dist(p, opt), loss=mse(res, p), loss_rel=mse(res, p)/opt_loss - 1, first=f, **mems[m].as_dict())
    return dict(rows=rows, optimum=opt, optimum_loss=opt_loss, scipy_config=list(cfg))


# ---------------------------------------------------------------- neural ODE epoch
def bench_nde(epochs: int, reps: int, torch_threads: int, warm_up: bool) -> dict:
    "ms per epoch and the loss after `epochs` epochs: the post's loop and this library's train, same data, model and seed."
    import torch
    from paramfittorchdemo import VDP, NeuralDiffEq, create_sim_dataset, train
    # bench_fit's reference_train is the post's loop; imported here, as bench_fit imports torch, which the JAX and scipy first-call
    # processes must not
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_fit import reference_train
    torch.set_num_threads(torch_threads)
    data = create_sim_dataset(VDP(mu=0.20), ts=torch.linspace(0.0, 30.0, 100), num_samples=30, sigma_noise=0.1,
                              initial_conditions_default=torch.tensor([0.50, 0.10]), seed=0)
    def model():
        torch.manual_seed(1)
        return NeuralDiffEq(dim=2)
    class AutogradNDE(NeuralDiffEq):  # a forward of its own: train's autograd path (what train did for NeuralDiffEq before MLPAdjoint)
        def forward(self, t, state): return self.ann(state)
    def autograd_model():
        torch.manual_seed(1)
        return AutogradNDE(dim=2)
    runs = {"reference loop": lambda e: reference_train(model(), data, e, 1e-3, 5, "rk4", 0.1, seed=0),
            "train, autograd": lambda e: train(autograd_model(), data, epochs=e, lr=1e-3, batch_size=5, show_every=None, seed=0).loss[-1],
            "library train": lambda e: train(model(), data, epochs=e, lr=1e-3, batch_size=5, show_every=None, seed=0).loss[-1]}
    for run in runs.values():
        if warm_up: run(1)
    times, loss, mems = {m: [] for m in runs}, {}, {m: [] for m in runs}
    for _ in range(reps):
        for m, run in runs.items():
            with peak_memory() as mem:
                t0 = time.perf_counter(); loss[m] = float(run(epochs)); times[m].append((time.perf_counter() - t0)/epochs*1e3)
            mems[m].append(mem)
    return dict(epochs=epochs, reps=reps, threads=torch_threads,
                rows={m: dict(ms_per_epoch=statistics.median(times[m]), ms_all=times[m], loss=loss[m], **worst(mems[m]).as_dict())
                      for m in runs})


def nde_full_recipe(epochs: int = 1500) -> dict:
    "The post's whole neural-ODE recipe with this library's train, once: minutes, the loss every 100 epochs and at the end."
    import torch
    from paramfittorchdemo import VDP, NeuralDiffEq, create_sim_dataset, train
    data = create_sim_dataset(VDP(mu=0.20), ts=torch.linspace(0.0, 30.0, 100), num_samples=30, sigma_noise=0.1,
                              initial_conditions_default=torch.tensor([0.50, 0.10]), seed=0)
    torch.manual_seed(1)
    t0 = time.perf_counter()
    h = train(NeuralDiffEq(dim=2), data, epochs=epochs, lr=1e-3, batch_size=5, show_every=None, seed=0)
    return dict(epochs=epochs, seconds=time.perf_counter() - t0, loss=h.loss[::100] + [h.loss[-1]])


# ---------------------------------------------------------------- output
def fmt(x, spec: str = ".3f", none: str = "-") -> str:
    return none if x is None else format(x, spec)


def ratio(a, b):
    return None if a is None or b is None else a/b


def table_rows(results: dict) -> list:
    "One printed row per (problem, method)."
    lines = []
    for name, r in results.items():
        rows = r["rows"]
        fc = {m: (row["first"] or {}).get("fit") for m, row in rows.items()}
        dx_warm = rows["diffrax"]["warm"] if "diffrax" in rows else None
        for m, row in rows.items():
            f = row["first"] or {}
            lines.append(f"{name:<7} {m:<8} {fmt(f.get('imports')):>8} {fmt(f.get('fit')):>9} {mb(f.get('peak_mb')):>8} "
                         f"{fmt(row['warm'], '.4f'):>9} {mb(row['peak_mb']):>7} {mb(row['rise_mb']):>5} "
                         f"{fmt(ratio(row['warm'], dx_warm), '.2f'):>9} {fmt(ratio(fc[m], fc.get('diffrax')), '.3f'):>13} "
                         f"{fmt(ratio(fc[m], fc.get('scipy')), '.2f'):>11} {row['dist']:>11.1e} {row['loss_rel']:>11.1e}  {row['note']}")
        lines.append(f"{'':<7} {'optimum':<8} mse {r['optimum_loss']:.8g} at {[round(v, 7) for v in r['optimum']]} "
                     f"(scipy ran {r['scipy_config'][0]}, diff_step={r['scipy_config'][1]})")
    return lines


def print_fits(results: dict, info: dict):
    print(info["versions"])
    print(f"threads: {info['threads_note']}; fits float64, ODE rtol={RTOL}, atol={ATOL}; warm: median of {info['reps']} interleaved calls")
    if not info["have_jax"]: print(JAX_NOTE)
    print("first MB: the first-call process's resident-memory peak over its whole life (VmHWM, read by it at its end)")
    print(f"{NOTE} (the method's warm calls, the largest over the reps)")
    print(f"{'problem':<7} {'method':<8} {'imports':>8} {'first fit':>9} {'first MB':>8} {'warm [s]':>9} {'peak MB':>7} {'+MB':>5} "
          f"{'x diffrax':>9} {'first/diffrax':>13} "
          f"{'first/scipy':>11} {'|dp|/p opt':>11} {'loss/opt-1':>11}  note")
    for line in table_rows(results): print(line)


def print_nde(nde: dict):
    rows = nde["rows"]
    print(f"\nneural ODE, the post's recipe: {nde['epochs']} epoch(s) per run, median of {nde['reps']} run(s), {nde['threads_note']}")
    print(f"{'method':<16} {'ms/epoch':>9} {'speed-up':>9} {'loss after':>12} {'peak MB':>8} {'+MB':>5}")  # speed-up: over the post's loop
    ref = rows["reference loop"]["ms_per_epoch"]
    for m, row in rows.items():
        print(f"{m:<16} {row['ms_per_epoch']:>9.1f} {ref/row['ms_per_epoch']:>8.2f}x {row['loss']:>12.6g} {mb(row['peak_mb']):>8} "
              f"{mb(row['rise_mb']):>5}")
    la, lb = rows["reference loop"]["loss"], rows["library train"]["loss"]
    print(f"loss difference library - reference: {lb - la:.2e} (relative {abs(lb - la)/abs(la):.1e})")
    if "train, autograd" in rows:
        print(f"train with its written-out adjoint (MLPAdjoint) against train's autograd path: "
              f"{rows['train, autograd']['ms_per_epoch']/rows['library train']['ms_per_epoch']:.1f}x faster per epoch")
    if nde.get("full"):
        f = nde["full"]
        per = f['seconds']/f['epochs']*1e3
        print(f"the whole recipe ({f['epochs']} epochs) with train: {f['seconds']/60:.2f} min ({per:.0f} ms/epoch; "
              f"the post's loop at its ms/epoch above: {ref*f['epochs']/6e4:.1f} min); loss every 100 epochs "
              f"{[round(v, 4) for v in f['loss']]}")


def targets(results: dict) -> list:
    """(what, measured ratio or None, ok) for the targets. The first call is a fresh process's first fit, compiling included (diffrax's
    tracing and XLA compile happen there), without the imports; the same with the imports is printed too (torch's import alone takes
    longer than scipy's import and first fit together)."""
    out = []
    for name, r in results.items():
        rows = r["rows"]
        lib, dx = rows["library"], rows.get("diffrax")
        fit = {m: (row["first"] or {}).get("fit") for m, row in rows.items()}
        whole = {m: (row["first"] or {}).get("seconds") for m, row in rows.items()}
        for what, val, limit in (
                (f"{name}: warm library <= 1.0x diffrax warm", ratio(lib["warm"], dx and dx["warm"]), 1.0),
                (f"{name}: library first fit <= 0.05x diffrax first fit", ratio(fit["library"], fit.get("diffrax")), 0.05),
                (f"{name}: library first fit <= 1.0x scipy first fit", ratio(fit["library"], fit.get("scipy")), 1.0),
                (f"{name}: with imports, library first call <= 0.05x diffrax's", ratio(whole["library"], whole.get("diffrax")), 0.05),
                (f"{name}: with imports, library first call <= 1.0x scipy's", ratio(whole["library"], whole.get("scipy")), 1.0)):
            out.append((what, val, None if val is None else val <= limit))
    return out


def accuracy_checks(results: dict) -> list:
    """The library's loss over the optimum's, minus 1, at most LOSS_SLACK above the best other method's (or above 0): at rtol 1e-6
    the ODE error alone keeps every method's loss above the accurate optimum by up to ~1e-3 on the chaotic Lorenz problem."""
    out = []
    for name, r in results.items():
        rel = {m: row["loss_rel"] for m, row in r["rows"].items()}
        best = min((m for m in rel if m != "library"), key=rel.get, default=None)
        floor = max(0.0, rel[best]) if best else 0.0
        out.append((f"{name}: library's loss/opt-1 {rel['library']:.1e} <= {LOSS_SLACK:g} + max(0, best other method's"
                    f"{f' ({best}) {rel[best]:.1e}' if best else ''})", rel["library"] <= LOSS_SLACK + floor))
    return out


def print_checks(tgts: list, checks: list, errors: list):
    print("\ntargets (first fit: a fresh process's first fit call, compiling included, imports not; 'with imports': both):")
    for what, val, ok in tgts:
        print(f"[{'skip' if ok is None else 'ok' if ok else 'MISS'}] {what}: {'not measured' if val is None else f'{val:.3f}x'}")
    print("\naccuracy:")
    for what, ok in checks: print(f"[{'ok' if ok else 'FAIL'}] {what}")
    for e in errors: print(f"[ERROR] {e}")


# ---------------------------------------------------------------- main
def have_jax() -> bool:
    try:
        import diffrax  # noqa: F401
        import jax  # noqa: F401
        import optimistix  # noqa: F401
        return True
    except ImportError:
        return False


def versions(jax_ok: bool) -> str:
    import scipy
    import torch
    out = f"torch {torch.__version__}, scipy {scipy.__version__}"
    if jax_ok:
        import diffrax
        import jax
        from importlib.metadata import version
        out += f", jax {jax.__version__}, diffrax {diffrax.__version__}, optimistix {version('optimistix')}"
    return out + f"; python {sys.version.split()[0]}"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI smoke test: 1 rep, no warm-ups, one first-call process, 1 neural-ODE epoch")
    ap.add_argument("--problems", default="vdp,lv,lorenz", help="comma-separated subset of vdp,lv,lorenz")
    ap.add_argument("--reps", type=int, default=7, help="warm calls per method (median)")
    ap.add_argument("--threads", type=int, default=1, choices=(0, 1), help="1: one thread for torch and XLA; 0: their defaults")
    ap.add_argument("--lm-tol", type=float, default=1e-5, help="optimistix LevenbergMarquardt rtol = atol")
    ap.add_argument("--nde-epochs", type=int, default=5, help="epochs per timed neural-ODE run (0: skip the neural-ODE part)")
    ap.add_argument("--nde-reps", type=int, default=3, help="timed neural-ODE runs per method (median)")
    ap.add_argument("--nde-threads", type=int, default=None, help="torch threads for the neural-ODE part (default: torch's default; "
                    "--quick: 1, as torch's default threads can be many times slower on a loaded machine)")
    ap.add_argument("--nde-full", action="store_true", help="also run the post's whole neural-ODE recipe (1500 epochs) with train, once")
    ap.add_argument("--json", help="also write every number to this JSON file")
    ap.add_argument("--first", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--data-file", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick: a.reps, a.nde_epochs, a.nde_reps, a.nde_threads = 1, 1, 1, a.nde_threads or 1
    a.problems = [p.strip() for p in a.problems.split(",") if p.strip()]
    bad = [p for p in a.problems if p not in PROBLEMS]
    if bad: ap.error(f"unknown problem(s) {bad}; choose from {list(PROBLEMS)}")
    return a


def main(a) -> int:
    if a.threads == 1: os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + XLA_ONE_THREAD).strip()
    import torch
    default_threads = torch.get_num_threads()
    if a.threads == 1: torch.set_num_threads(1)
    jax_ok = have_jax()
    methods = ["library", "diffrax", "scipy"] if jax_ok else ["library", "scipy"]
    info = dict(versions=versions(jax_ok), have_jax=jax_ok, reps=a.reps, lm_tol=a.lm_tol, threads=a.threads, rtol=RTOL, atol=ATOL,
                threads_note=(f"1 (torch.set_num_threads(1), XLA_FLAGS='{XLA_ONE_THREAD}')" if a.threads == 1
                              else f"defaults (torch {default_threads}, XLA its own)"))
    results, errors = {}, []
    for i, name in enumerate(a.problems):
        first_methods = (["library"] if i == 0 else []) if a.quick else methods
        try:
            results[name] = bench_problem(name, methods, first_methods, a, errors)
        except Exception as e:  # report and go on with the other problems
            errors.append(f"{name}: {type(e).__name__}: {e}")
    if results: print_fits(results, info)
    nde = None
    if a.nde_epochs <= 0: print("\nneural ODE: skipped (--nde-epochs 0)")
    else:
        try:
            nde = bench_nde(a.nde_epochs, a.nde_reps, a.nde_threads or default_threads, not a.quick)
            how = "set by --nde-threads or --quick" if a.nde_threads else "torch default"
            nde["threads_note"] = f"torch threads {nde['threads']} ({how})"
            if a.nde_full: nde["full"] = nde_full_recipe()
            print_nde(nde)
        except Exception as e:
            errors.append(f"neural ODE: {type(e).__name__}: {e}")
    tgts, checks = targets(results), accuracy_checks(results)
    print_checks(tgts, checks, errors)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(dict(info=info, problems=results, neural_ode=nde, errors=errors,
                           targets=[dict(what=w, ratio=v, ok=ok) for w, v, ok in tgts],
                           accuracy=[dict(what=w, ok=ok) for w, ok in checks]), fh, indent=1)
    return 1 if errors or not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    args = parse_args()
    if args.first:
        first_call_child(args)
    else:
        sys.exit(main(args))
