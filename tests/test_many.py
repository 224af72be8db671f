"Many independent fits: fit_many against fit, per-dataset options and statuses, the results table, estimate_many, Ray and CUDA."
import math
import os

import pytest
import torch

from paramfittorchdemo import LotkaVolterra, Observations, Param, SimODEData, create_sim_dataset, estimate, fit
from paramfittorchdemo.many import ManyFits, estimate_many, fit_many
from paramfittorchdemo.models import FunctionODE, param_dict

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
    (lambda d: [d[0], "x"], TypeError, "dataset 1 is a str"),
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
