"Many independent fits: fit_many against fit, per-dataset options and statuses, the results table, estimate_many, Ray and CUDA."
import math
import os

import pytest
import torch

from paramfittorchdemo import LotkaVolterra, Observations, Param, SimODEData, create_sim_dataset, estimate, fit
from paramfittorchdemo.many import ManyFits, estimate_many, fit_many
from paramfittorchdemo.models import FunctionODE, param_dict
from paramfittorchdemo.solvers import ADAPTIVE_METHODS, FIXED_STEP_METHODS

TS = torch.arange(0, 10, 0.1)


def lv_datasets(n: int, seed: int = 0, trajectories: int = 4, noise: float = 0.05, ts=TS) -> tuple:
    "n Lotka-Volterra datasets, each from its own truth within +-20% of the post's parameters: (datasets, truth (n, 4))."
    g = torch.Generator().manual_seed(seed)
    truth = torch.tensor([1.5, 1.0, 3.0, 1.0])*(1 + 0.4*(torch.rand(n, 4, generator=g) - 0.5))
    data = [create_sim_dataset(LotkaVolterra(*truth[d].tolist()), ts, num_samples=trajectories, sigma_noise=noise,
                               initial_conditions_default=torch.tensor([2.5, 2.5]), sigma_initial_conditions=0.5, seed=100*seed + d)
            for d in range(n)]
    return data, truth.double()


@pytest.fixture(scope="module")
def population():
    return lv_datasets(6)


def test_fit_many_equals_fit_on_each_dataset(population):
    datasets, truth = population
    res = fit_many(LotkaVolterra(), datasets)
    assert isinstance(res, ManyFits) and len(res) == 6 and res.names == ["alpha", "beta", "delta", "gamma"]
    assert res.status == ["converged"]*6 and bool(res.success.all())
    for d in (0, 3):
        one = fit(LotkaVolterra(), datasets[d])
        torch.testing.assert_close(res.params[d], torch.tensor(list(one.params.values()), dtype=torch.float64), rtol=1e-5, atol=1e-7)
        assert res.loss[d].item() == pytest.approx(one.loss, rel=1e-6)
    assert ((res.params - truth).abs() <= 0.1*truth).all()


def test_intervals_and_standard_errors(population):
    datasets, truth = population
    res = fit_many(LotkaVolterra(), datasets)
    assert torch.isfinite(res.stderr).all() and (res.stderr > 0).all()
    assert (res.lower < res.params).all() and (res.params < res.upper).all()
    half = (res.upper - res.params)/res.stderr  # Student's t quantile with the fit's degrees of freedom
    assert half.min().item() == pytest.approx(1.96, abs=0.01)
    # the standard errors agree with estimate's on the same data (initial states from the data, as in fit)
    est = estimate(LotkaVolterra(), Observations.from_sim(datasets[0]), initial_conditions="first")
    for j, n in enumerate(res.names):
        assert res.stderr[0, j].item() == pytest.approx(est.stderr[n], rel=0.05)


def test_fit_many_does_not_change_the_model(population):
    model = LotkaVolterra()
    fit_many(model, population[0][:2])
    assert list(param_dict(model).values()) == pytest.approx([1.5, 1.0, 3.0, 1.0])


def test_datasets_of_different_layouts():
    a, ta = lv_datasets(2, seed=1)
    b, tb = lv_datasets(2, seed=2, trajectories=2, ts=TS[:70])
    res = fit_many(LotkaVolterra(), {"a0": a[0], "b0": b[0], "a1": a[1], "b1": b[1]})
    assert res.ids == ["a0", "b0", "a1", "b1"]
    truth = torch.stack([ta[0], tb[0], ta[1], tb[1]])
    assert res.status == ["converged"]*4 and ((res.params - truth).abs() <= 0.1*truth).all()
    assert res["b1"]["alpha"] == res.params[3, 0].item()


def test_per_dataset_starts_and_multistart(population):
    datasets, truth = population
    per = fit_many(LotkaVolterra(), datasets, starts=truth*1.2)
    both = fit_many(LotkaVolterra(), datasets, starts=torch.stack([truth*0.8, truth*1.2], 1))
    torch.testing.assert_close(per.params, both.params, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"\(6, 4\)"): fit_many(LotkaVolterra(), datasets, starts=torch.ones(5, 4))
    with pytest.raises(ValueError, match="NaN or inf"): fit_many(LotkaVolterra(), datasets, starts=torch.full((6, 4), math.nan))


def test_fixed_bounded_and_positive_parameters(population):
    datasets, truth = population
    params = {"beta": Param(1.0, fixed=True), "alpha": Param(value=1.2, lower=0.1, upper=1.45), "gamma": Param(positive=True)}
    res = fit_many(LotkaVolterra(), datasets, params=params)
    assert (res.params[:, 1] == 1.0).all() and torch.isnan(res.stderr[:, 1]).all()
    assert (res.params[:, 0] <= 1.45).all() and (res.params[:, 3] > 0).all() and bool((res.params[:, 0] > 1.45*(1 - 1e-5)).any())
    at_edge = res.params[:, 0] > 1.45*(1 - 1e-5)  # the data want alpha above the bound: held there, no error bar
    for d in at_edge.nonzero().flatten().tolist():
        assert math.isnan(res.stderr[d, 0]) and "at a bound" in res.message[d]
    with pytest.raises(ValueError, match="not strictly inside its bounds"):
        fit_many(LotkaVolterra(), datasets, params={"alpha": Param(lower=2.0)})
    with pytest.raises(ValueError, match="unknown parameter"): fit_many(LotkaVolterra(), datasets, params={"zeta": 1.0})


def test_weights(population):
    datasets, _ = population
    prey_only = fit_many(LotkaVolterra(), datasets[:2], weights=[1.0, 0.0])
    assert prey_only.status == ["converged"]*2
    with pytest.raises(ValueError, match="2 non-negative"): fit_many(LotkaVolterra(), datasets, weights=[1.0, -1.0])


def test_a_parameter_the_data_cannot_determine_has_no_finite_error_bar():
    def lv(t, y, alpha, beta, delta, gamma, unused):
        x, z = y[..., 0], y[..., 1]
        return torch.stack([alpha*x - beta*x*z, delta*x*z - gamma*z], -1)
    datasets, _ = lv_datasets(2, seed=3)
    model = FunctionODE(lv, 2, alpha=1.5, beta=1.0, delta=3.0, gamma=1.0, unused=0.5)
    res = fit_many(model, datasets)
    j = res.names.index("unused")
    assert torch.isinf(res.stderr[:, j]).all() and torch.isfinite(res.stderr[:, [i for i in range(5) if i != j]]).all()


def test_statuses_say_what_happened(population):
    datasets, _ = population
    res = fit_many(LotkaVolterra(), datasets[:3], max_iter=1, horizons=None)
    assert all(s != "converged" for s in res.status) and all("converged" not in m.split(":")[0] for m in res.message)
    assert torch.isnan(res.stderr).all()  # no optimum: no error bars
    assert torch.isfinite(res.params).all()


def test_a_blow_up_in_one_dataset_leaves_the_others():
    datasets, truth = lv_datasets(3, seed=4)
    starts = truth.clone()
    starts[1] = torch.tensor([1.5, -40.0, 3.0, -40.0], dtype=torch.float64)  # a start whose solution blows up
    res = fit_many(LotkaVolterra(), datasets, starts=starts)
    assert res.status[0] == res.status[2] == "converged"
    assert torch.isfinite(res.params).all()  # a failed dataset keeps its start, never NaN


def test_results_table(population, tmp_path):
    res = fit_many(LotkaVolterra(), population[0][:3])
    d = res.to_dict()
    assert list(d)[:5] == ["dataset", "alpha", "alpha_stderr", "alpha_lower", "alpha_upper"] and len(d["status"]) == 3
    res.to_csv(tmp_path/"fits.csv")
    text = (tmp_path/"fits.csv").read_text().splitlines()
    assert text[0].startswith("dataset,alpha,alpha_stderr") and len(text) == 4
    pd = pytest.importorskip("pandas")
    df = res.to_dataframe()
    assert isinstance(df, pd.DataFrame) and df.shape[0] == 3 and df["status"].tolist() == res.status
    assert "ManyFits: 3 datasets" in repr(res) and "converged" in repr(res)


def test_long_table_input(population):
    pd = pytest.importorskip("pandas")
    datasets, _ = population
    tab = pd.concat([Observations.from_sim(d).to_dataframe().assign(subject=f"s{i}") for i, d in enumerate(datasets[:3])])
    res = fit_many(LotkaVolterra(), tab, dataset_col="subject")
    ref = fit_many(LotkaVolterra(), datasets[:3])
    assert res.ids == ["s0", "s1", "s2"]
    torch.testing.assert_close(res.params, ref.params, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="no dataset column 'dataset'"): fit_many(LotkaVolterra(), tab)


@pytest.mark.parametrize("bad, err, match", [
    (lambda d: d[0], TypeError, "several datasets"),
    (lambda d: [], ValueError, "at least one dataset"),
    (lambda d: [d[0], "x"], TypeError, r"datasets\['1'\] is str"),
    (lambda d: 3, TypeError, "got int"),
])
def test_bad_datasets(population, bad, err, match):
    with pytest.raises(err, match=match): fit_many(LotkaVolterra(), bad(population[0]))


@pytest.mark.parametrize("kw, err, match", [
    (dict(chunk_size=0), ValueError, "chunk_size"),
    (dict(backend="spark"), ValueError, "'local' or 'ray'"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(level=1.0), ValueError, "level"),
    (dict(progress="yes"), TypeError, "progress"),
    (dict(horizons="some"), ValueError, "horizons"),
    (dict(max_retries=-1), ValueError, "max_retries"),
])
def test_bad_options(population, kw, err, match):
    with pytest.raises(err, match=match): fit_many(LotkaVolterra(), population[0][:2], **kw)


def test_a_dataset_that_does_not_match_the_model(population):
    three = SimODEData(TS, [torch.ones(len(TS), 3)])
    with pytest.raises(ValueError): fit_many(LotkaVolterra(), [population[0][0], three])


def test_chunks_give_the_same_numbers(population):
    datasets, _ = population
    one = fit_many(LotkaVolterra(), datasets)
    three = fit_many(LotkaVolterra(), datasets, chunk_size=2, progress=True)
    assert three.chunks == 3 and one.chunks == 1
    torch.testing.assert_close(one.params, three.params, rtol=1e-6, atol=1e-8)


def test_estimate_many(population):
    datasets, truth = population
    obs = [Observations.from_sim(d) for d in datasets[:2]]
    res = estimate_many(LotkaVolterra(), obs, params={"alpha": Param(positive=True)}, ic_positive=True)
    for d in range(2):
        one = estimate(LotkaVolterra(), obs[d], params={"alpha": Param(positive=True)}, ic_positive=True)
        assert res.params[d].tolist() == pytest.approx([one.params[n] for n in res.names], rel=1e-9)
        assert res.stderr[d, 0].item() == pytest.approx(one.stderr["alpha"], rel=1e-9)
        assert (res.lower[d, 0].item(), res.upper[d, 0].item()) == pytest.approx(one.ci["alpha"], rel=1e-9)
        assert res.status[d] == one.status
    with pytest.raises(TypeError, match="unknown option"): estimate_many(LotkaVolterra(), obs, bogus=1)


def test_estimate_many_records_a_failing_dataset_and_goes_on(population):
    datasets, _ = population
    obs = [Observations.from_sim(datasets[0]), Observations.from_arrays(TS[:1], torch.ones(1, 1, 2)),
           Observations.from_sim(datasets[1])]
    res = estimate_many(LotkaVolterra(), obs)
    assert res.status[0] == res.status[2] == "converged"
    assert res.status[1] == "error" and res.message[1].startswith("error: ValueError") and torch.isnan(res.stderr[1]).all()


# ---------------------------------------------------------------------------------------------------------
# Ray: a local instance with two CPUs

def _killer_lv(marker: str, driver: int):
    "Lotka-Volterra whose first evaluation in a Ray worker (not in the driver) kills that worker, once."
    def lv(t, y, alpha, beta, delta, gamma):
        if os.getpid() != driver:
            try: os.remove(marker)
            except FileNotFoundError: pass
            else: os._exit(1)  # the worker process dies, as when a machine goes away
        x, z = y[..., 0], y[..., 1]
        return torch.stack([alpha*x - beta*x*z, delta*x*z - gamma*z], -1)
    return lv


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_equals_local(ray_local, population):
    datasets, _ = population
    local = fit_many(LotkaVolterra(), datasets, chunk_size=3)
    remote = fit_many(LotkaVolterra(), datasets, chunk_size=3, backend="ray", progress=True)
    assert remote.backend == "ray" and remote.chunks == 2 and remote.status == local.status
    assert (remote.params - local.params).abs().max().item() <= 1e-10
    assert (remote.stderr - local.stderr).abs().max().item() <= 1e-10


def test_ray_retries_a_chunk_whose_worker_died(ray_local, population, tmp_path):
    datasets, _ = population
    marker = tmp_path/"kill-once"
    marker.write_text("")
    params = dict(alpha=1.5, beta=1.0, delta=3.0, gamma=1.0)
    model = FunctionODE(_killer_lv(str(marker), os.getpid()), 2, **params)
    local = fit_many(model, datasets[:4], chunk_size=2)  # in the driver: nobody dies
    remote = fit_many(model, datasets[:4], chunk_size=2, backend="ray", max_retries=2)
    assert not marker.exists(), "no worker was killed"
    assert remote.status == local.status == ["converged"]*4
    assert (remote.params - local.params).abs().max().item() <= 1e-10


def test_ray_keeps_the_finished_chunks_when_one_is_lost(ray_local, population, tmp_path):
    datasets, _ = population
    marker = tmp_path/"kill-once"
    marker.write_text("")
    model = FunctionODE(_killer_lv(str(marker), os.getpid()), 2, alpha=1.5, beta=1.0, delta=3.0, gamma=1.0)
    res = fit_many(model, datasets[:4], chunk_size=2, backend="ray", max_retries=0)
    assert not marker.exists()
    assert sorted(res.status) == ["converged", "converged", "lost", "lost"]
    lost = [i for i, s in enumerate(res.status) if s == "lost"]
    assert lost in ([0, 1], [2, 3]) and all("Ray task" in res.message[i] for i in lost) and torch.isinf(res.loss[lost]).all()


def test_estimate_many_on_ray(ray_local, population):
    obs = [Observations.from_sim(d) for d in population[0][:2]]
    local = estimate_many(LotkaVolterra(), obs, chunk_size=1)
    remote = estimate_many(LotkaVolterra(), obs, chunk_size=1, backend="ray")
    assert (remote.params - local.params).abs().max().item() <= 1e-10 and remote.status == local.status


def test_ray_missing_says_how_to_install(monkeypatch, population):
    import builtins
    real = builtins.__import__
    def no_ray(name, *a, **k):
        if name == "ray": raise ImportError("No module named 'ray'")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ImportError, match=r"paramfittorchdemo\[distributed\]"):
        fit_many(LotkaVolterra(), population[0][:2], backend="ray")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fit_many_on_cuda(population):
    datasets, _ = population
    gpu = fit_many(LotkaVolterra().cuda(), datasets)
    cpu = fit_many(LotkaVolterra(), datasets)
    assert gpu.status == cpu.status and (gpu.params - cpu.params).abs().max().item() <= 1e-8


def test_the_library_works_without_ray():
    "ray is imported only for backend='ray': with ray unavailable, the package imports and fit_many runs locally."
    import subprocess
    import sys
    code = ("import sys; sys.modules['ray'] = None\n"
            "import torch, paramfittorchdemo as p\n"
            "d = [p.create_sim_dataset(p.LotkaVolterra(), torch.arange(0, 5, 0.1), num_samples=2, sigma_noise=0.05,\n"
            "     initial_conditions_default=torch.tensor([2.5, 2.5]), seed=s) for s in range(2)]\n"
            "r = p.fit_many(p.LotkaVolterra(), d)\n"
            "print(r.status)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "converged" in out.stdout


def test_bench_many_smoke(capsys):
    "benchmarks/bench_many.py at its smallest: it runs, and fit_many succeeds on every dataset (timing is not checked)."
    pytest.importorskip("scipy")
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1]/"benchmarks"/"bench_many.py"
    spec = importlib.util.spec_from_file_location("bench_many", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--systems", "lv", "--n", "4", "--loop-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "| fit_many " in out and "| scipy loop " in out and "4/4" in out and "| peak MB |" in out


# ---------------------------------------------------------------------------------------------------------
# every solver method, user-written models, and a per-dataset step budget (issue 19)

SHORT = torch.arange(0, 3, 0.1)


@pytest.fixture(scope="module")
def short_population():
    "Three small datasets on a short span: fits with every method stay fast."
    return lv_datasets(3, seed=5, trajectories=2, ts=SHORT)[0]


def lv_rhs(t, y, alpha, beta, delta, gamma):
    x, z = y[..., 0], y[..., 1]
    return torch.stack([alpha*x - beta*x*z, delta*x*z - gamma*z], -1)


class VectorLV(torch.nn.Module):
    "Lotka-Volterra written by a user: one vector parameter, no `dim`, no `autonomous`, no population traits."
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.tensor([1.4, 1.0, 3.0, 1.0]))
    def forward(self, t, y):
        a, b, d, g = self.p.unbind(-1)
        x, z = y[..., 0], y[..., 1]
        return torch.stack([a*x - b*x*z, d*x*z - g*z], -1)


class BranchingLV(VectorLV):
    "A user model that reads a parameter with .item(): torch.func cannot trace it, so it is evaluated copy by copy."
    def forward(self, t, y):
        if self.p[0].item() > 100: return torch.zeros_like(y)
        return super().forward(t, y)


MODELS = {
    "LotkaVolterra": lambda: LotkaVolterra(1.4, 1.0, 3.0, 1.0),
    "FunctionODE": lambda: FunctionODE(lv_rhs, 2, alpha=1.4, beta=1.0, delta=3.0, gamma=1.0),
    "FunctionODE(autonomous=False)": lambda: FunctionODE(lv_rhs, 2, autonomous=False, alpha=1.4, beta=1.0, delta=3.0, gamma=1.0),
    "VectorLV": VectorLV,
    "BranchingLV": BranchingLV,
}


def fit_each(make, datasets, **kw) -> torch.Tensor:
    "fit on each dataset on its own: the parameters, (D, P)."
    return torch.stack([torch.tensor(list(fit(make(), d, **kw).params.values()), dtype=torch.float64) for d in datasets])


@pytest.mark.parametrize("name, method, n, tol", [
    ("LotkaVolterra", "rk4", 3, 1e-5), ("LotkaVolterra", "euler", 3, 1e-5), ("LotkaVolterra", "midpoint", 3, 1e-5),
    ("LotkaVolterra", "heun3", 3, 1e-5), ("LotkaVolterra", "implicit_adams", 3, 1e-5),
    ("LotkaVolterra", "dopri8", 3, 1e-4),  # torchdiffeq steps all datasets together: other steps than one dataset alone, within rtol
    ("FunctionODE", "rk4", 3, 1e-5), ("FunctionODE(autonomous=False)", "dopri5", 3, 1e-5),
    ("FunctionODE(autonomous=False)", "rk4", 3, 1e-5),
    ("VectorLV", "dopri5", 3, 1e-5), ("VectorLV", "heun2", 3, 1e-5), ("BranchingLV", "euler", 2, 1e-5),
])
def test_fit_many_equals_fit_for_user_models_and_solver_methods(short_population, name, method, n, tol):
    "Before: a per-dataset step budget reached the shared-step solvers (rk4, torchdiffeq, dopri5 of a time-dependent model) as a tensor."
    kw = dict(method=method, step_size=(0.1 if name == "BranchingLV" else 0.05) if method in FIXED_STEP_METHODS else None)
    many = fit_many(MODELS[name](), short_population[:n], **kw)
    assert many.status == ["converged"]*n, many.message
    torch.testing.assert_close(many.params, fit_each(MODELS[name], short_population[:n], **kw), rtol=tol, atol=tol/10)
    assert torch.isfinite(many.stderr).all() and (many.stderr > 0).all()


@pytest.mark.parametrize("method", FIXED_STEP_METHODS + ADAPTIVE_METHODS)
def test_fit_many_runs_every_method_it_accepts(short_population, method):
    "Every method gives a table (a solver that blows up is a dataset's status, never an exception), and the budget per dataset works."
    kw = dict(step_size=0.05) if method in FIXED_STEP_METHODS else dict(rtol=1e-4)
    res = fit_many(MODELS["FunctionODE(autonomous=False)"](), short_population[:2], method=method, max_iter=2, horizons=None, **kw)
    assert len(res) == 2 and torch.isfinite(res.params).all()
    assert all(s in ("converged", "max_iter", "stalled", "solver_failed") for s in res.status), res.message


def test_scipy_solver_derivatives_by_central_differences(short_population):
    "scipy's solvers cannot integrate complex states: fit_many differentiates through them by central differences."
    scipy_fit = fit_many(LotkaVolterra(1.4), short_population, method="scipy_solver")
    native = fit_many(LotkaVolterra(1.4), short_population)
    assert scipy_fit.status == ["converged"]*3
    torch.testing.assert_close(scipy_fit.params, native.params, rtol=1e-3, atol=1e-4)


def test_torchdiffeq_solves_count_their_steps(short_population):
    "A torchdiffeq solve reports its evaluations and steps, so fit's budget (3 times the steps of a good solve) is no longer 200 steps."
    from paramfittorchdemo.solvers import SolveStats, integrate
    stats = SolveStats()
    integrate(LotkaVolterra(), torch.tensor([[2.5, 2.5]]), SHORT, "adaptive_heun", rtol=1e-6, atol=1e-8, stats=stats)
    assert stats.nfe > 200 and stats.steps > 200
    first_second = [SimODEData(SHORT[:11], d.tensors()[1][:, :11]) for d in short_population[:2]]  # t in [0, 1]: about 1000 steps
    res = fit_many(LotkaVolterra(1.4), first_second, method="adaptive_heun", rtol=1e-6, max_iter=3, horizons=None)
    assert "solver_failed" not in res.status and "budget of" not in " ".join(res.message), res.message


def test_a_parameter_without_effect_gets_an_infinite_standard_error_when_it_is_the_only_free_one(short_population):
    "Its Jacobian column is zero: the step solves a singular system (lm_step), and the standard error is infinite, not a LinAlgError."
    def lv_plus(t, y, alpha, beta, delta, gamma, unused): return lv_rhs(t, y, alpha, beta, delta, gamma)
    model = FunctionODE(lv_plus, 2, alpha=1.5, beta=1.0, delta=3.0, gamma=1.0, unused=0.5)
    fixed = {n: Param(fixed=True) for n in ("alpha", "beta", "delta", "gamma")}
    res = fit_many(model, short_population[:2], params=fixed)
    assert res.status == ["converged"]*2 and torch.isinf(res.stderr[:, 4]).all() and torch.isnan(res.stderr[:, :4]).all()


def test_a_model_too_large_for_levenberg_marquardt_is_refused(short_population):
    from paramfittorchdemo import NeuralDiffEq
    with pytest.raises(ValueError, match=r"at most 100 trainable parameters.*has 778.*optimizer='adam-lbfgs'"):
        fit_many(NeuralDiffEq(2), short_population)


# ---------------------------------------------------------------------------------------------------------
# arguments of fit_many and estimate_many (issue 19)

@pytest.mark.parametrize("kw, err, match", [
    (dict(dtype="float64"), TypeError, r"dtype as torch.float64 or torch.float32 \(or None: the model's own\), got str"),
    (dict(dtype=torch.float16), ValueError, "got torch.float16"),
    (dict(dtype=torch.int64), ValueError, "got torch.int64"),
    (dict(params=[("alpha", 1.0)]), TypeError, "params as a dict"),
    (dict(params="alpha"), TypeError, "params as a dict"),
    (dict(starts="1.5"), TypeError, "starts as numbers"),
    (dict(starts={"alpha": 1.5}), TypeError, "starts as numbers"),
    (dict(starts=[[1.5, 1, 3, 1], [1.5, 1]]), TypeError, "one rectangular shape"),
    (dict(starts=torch.ones(3, 0, 4)), ValueError, r"K >= 1"),
    (dict(starts=torch.ones(3, 4, dtype=torch.bool)), TypeError, "booleans"),
    (dict(starts=torch.ones(3, 4)*1j), TypeError, "complex"),
    (dict(weights="equal"), TypeError, "weights as numbers"),
    (dict(weights={"x": 1.0}), TypeError, "weights as numbers"),
    (dict(weights=[1.0, math.nan]), ValueError, "2 non-negative finite numbers"),
    (dict(weights=[0.0, 0.0]), ValueError, "not all zero"),
    (dict(backend=None), TypeError, "backend 'local' or 'ray'"),
    (dict(address=8265), TypeError, "address as the Ray cluster's address"),
    (dict(ray_options=["num_gpus"]), TypeError, "ray_options as a dict"),
    (dict(level=math.nan), ValueError, "level"),
    (dict(max_steps=1.5), ValueError, "max_steps"),
    (dict(method="lsoda"), ValueError, "unknown solver method 'lsoda'"),
    (dict(method="rk4", step_size=-0.1), ValueError, "step_size must be a positive finite number"),
    (dict(rtol=math.inf), ValueError, "rtol must be a positive finite number"),
    (dict(rtol=None), TypeError, "fit_many needs rtol as a positive finite number, got NoneType"),
    (dict(rtol=2.0), ValueError, "rtol as a relative tolerance below 1, got 2.0"),
    (dict(method="rk4", step_size=10.0), ValueError, "step_size=10 is longer than dataset 0's span of 2.9"),
    (dict(method="euler", step_size=1e-300), ValueError, r"takes 2.9e\+300 steps .* more than max_steps=20000"),
    (dict(dataset_col=3), TypeError, "dataset_col as a column name"),
])
def test_bad_arguments_are_refused_before_any_fit(short_population, kw, err, match):
    with pytest.raises(err, match=match): fit_many(LotkaVolterra(), short_population, **kw)


def test_a_model_in_half_precision_needs_a_dtype(short_population):
    with pytest.raises(ValueError, match=r"own dtype, torch.float16.*pass dtype=torch.float64"):
        fit_many(LotkaVolterra().half(), short_population, dtype=None)


def test_datasets_with_different_numbers_of_states_are_refused():
    "A model without `dim` takes any state size: datasets of different sizes cannot share it (nor its weights)."
    decay = FunctionODE(lambda t, y, k: -k*y, 1, k=0.5)
    del decay.dim  # a model that declares no state dimension
    one = SimODEData(TS[:5], torch.ones(1, 5, 1))
    two = SimODEData(TS[:5], torch.ones(1, 5, 2))
    with pytest.raises(ValueError, match="dataset 0 has 1 and dataset 1 has 2"): fit_many(decay, [one, two])


def test_long_tables_without_names_or_rows_are_refused(population):
    pd = pytest.importorskip("pandas")
    tab = pd.concat([Observations.from_sim(d).to_dataframe().assign(dataset=s) for d, s in zip(population[0][:2], ["a", None])])
    with pytest.raises(ValueError, match=r"dataset column 'dataset' is empty in \d+ row"): fit_many(LotkaVolterra(), tab)
    with pytest.raises(ValueError, match="table without rows"): fit_many(LotkaVolterra(), tab.iloc[:0])
    with pytest.raises(TypeError, match="dataset_col as a column name"): fit_many(LotkaVolterra(), tab, dataset_col=["dataset"])
    mixed = pd.concat([Observations.from_sim(d).to_dataframe().assign(dataset=s) for d, s in zip(population[0][:2], [1, "1"])])
    with pytest.raises(ValueError, match="1 and '1' are both named '1'"): fit_many(LotkaVolterra(), mixed)


def test_dict_keys_that_become_the_same_name_are_refused(population):
    with pytest.raises(ValueError, match="keys 1 and '1' are both named '1'"):
        fit_many(LotkaVolterra(), {1: population[0][0], "1": population[0][1]})


def test_estimate_many_refuses_bad_options_before_any_dataset(population):
    obs = [Observations.from_sim(d) for d in population[0][:2]]
    with pytest.raises(ValueError, match="unknown solver method 'nope'"): estimate_many(LotkaVolterra(), obs, method="nope")
    with pytest.raises(ValueError, match="estimate_many needs max_iter as a positive"): estimate_many(LotkaVolterra(), obs, max_iter=0)
    with pytest.raises(TypeError, match="estimate_many needs ic_positive as True or"): estimate_many(LotkaVolterra(), obs, ic_positive=1)
    with pytest.raises(TypeError, match="params as a dict"): estimate_many(LotkaVolterra(), obs, params=["alpha"])
    with pytest.raises(ValueError, match=r"starts as \(datasets, parameters\) = \(2, 4\), got shape \(2, 1, 4\)"):
        estimate_many(LotkaVolterra(), obs, starts=torch.ones(2, 1, 4))
    with pytest.raises(TypeError, match="estimate_many needs model as a torch.nn.Module"): estimate_many("lv", obs)


def test_estimate_many_raises_the_error_every_dataset_shares(population):
    "An option that only estimate checks (here loss) fails every dataset alike: estimate_many raises it instead of a table of errors."
    obs = [Observations.from_sim(d) for d in population[0][:2]]
    with pytest.raises(ValueError, match=r"estimate failed on all 2 datasets with the same ValueError.*unknown loss 'l1'"):
        estimate_many(LotkaVolterra(), obs, loss="l1")


# ---------------------------------------------------------------------------------------------------------
# indexing ManyFits (issue 19)

@pytest.fixture(scope="module")
def table(short_population):
    return fit_many(LotkaVolterra(1.4), {"a": short_population[0], "b b": short_population[1], "c": short_population[2]})


def test_rows_by_position_name_and_slice(table):
    assert table[0]["dataset"] == "a" and table[-1]["dataset"] == "c" and table["b b"]["alpha"] == table.params[1, 0].item()
    import numpy as np
    assert table[np.int64(1)] == table[1] == table[torch.tensor(1)]
    part = table[1:]
    assert isinstance(part, ManyFits) and part.ids == ["b b", "c"] and torch.equal(part.params, table.params[1:])
    assert part.status == table.status[1:] and part["c"] == table["c"]
    assert len(table[5:]) == 0 and table[5:].to_dict()["dataset"] == [] and "0 datasets" in repr(table[5:])
    assert table[::-1].ids == ["c", "b b", "a"]
    assert [row["dataset"] for row in table] == ["a", "b b", "c"]  # iteration stops at the end (IndexError)


@pytest.mark.parametrize("key, err, match", [
    (3, IndexError, r"there are 3 datasets \(positions 0 to 2, or -3 to -1\), got 3"),
    (-4, IndexError, "got -4"),
    ("d", ValueError, "no dataset is named 'd'; the datasets are 'a', 'b b', 'c'"),
    (1.0, TypeError, "got float 1.0"),
    (True, TypeError, "got bool True"),
    (None, TypeError, "got NoneType"),
    ([0, 1], TypeError, "got list"),
    (torch.tensor([0, 1]), TypeError, "got Tensor"),
])
def test_bad_rows_say_what_exists(table, key, err, match):
    with pytest.raises(err, match=match): table[key]


def test_to_csv_checks_its_path(table, tmp_path):
    with pytest.raises(TypeError, match=r"ManyFits.to_csv needs path as a file path"): table.to_csv(3)
    table[1:].to_csv(tmp_path/"part.csv")
    assert (tmp_path/"part.csv").read_text().splitlines()[1].startswith("b b,")


def test_horizons_in_any_container(short_population):
    "Before: horizons=np.array([...]) was compared with 'auto' elementwise."
    import numpy as np
    a = fit_many(LotkaVolterra(1.4), short_population[:2], horizons=np.array([0.5]))
    b = fit_many(LotkaVolterra(1.4), short_population[:2], horizons=(0.5,))
    assert torch.equal(a.params, b.params)


def test_a_module_not_called_as_model_t_y_is_refused(short_population):
    with pytest.raises(TypeError, match=r"calls model as model\(t, y\), but Linear.forward takes \(input"):
        fit_many(torch.nn.Linear(2, 2), short_population)


def test_torchdiffeq_adaptive_methods_take_complex_states_at_rest():
    "Before: torchdiffeq's first-step estimate raised 'maximum not implemented for complex tensors' at rest (fit's complex step)."
    from paramfittorchdemo.solvers import integrate
    for method in ("bosh3", "fehlberg2", "adaptive_heun", "dopri8"):
        ys = integrate(LotkaVolterra(), torch.zeros(1, 2, dtype=torch.complex128), SHORT.double(), method, rtol=1e-6, atol=1e-8)
        assert ys.shape == (1, 30, 2) and bool((ys == 0).all())
