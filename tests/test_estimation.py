import math
import re

import pytest
import torch
from torch import nn

from paramfittorchdemo import LotkaVolterra, VDP, create_sim_dataset, param_dict, simulate
from paramfittorchdemo.lm import FitWarning
from paramfittorchdemo.estimation import Param, estimate
from paramfittorchdemo.observations import Observations
from paramfittorchdemo.callbacks import DivergenceError

f64 = dict(dtype=torch.float64)
TRUTH = dict(alpha=1.5, beta=1.0, delta=3.0, gamma=1.0)
RATES = {k: Param(positive=True) for k in TRUTH}


def lv_obs(seed=1, sigma=0.05, missing=0.1, B=4, t_end=8.0, n=30, columns=("prey", "predator")):
    "Ragged random time grids, noise, missing values; the true initial states."
    g = torch.Generator().manual_seed(seed)
    true = LotkaVolterra(**TRUTH).double()
    times, values, y0s = [], [], []
    for b in range(B):
        t = torch.cat([torch.zeros(1, **f64), torch.sort(torch.rand(n + 5*b, generator=g, **f64)*t_end)[0]])
        y0 = torch.tensor([2.0 + 0.3*b, 1.5 + 0.2*b], **f64)
        with torch.no_grad(): ys = simulate(true, y0[None], t, rtol=1e-10, atol=1e-12)[0]
        ys = ys + sigma*torch.randn(ys.shape, generator=g, **f64)
        ys[torch.rand(ys.shape, generator=g, **f64) < missing] = float("nan")
        times.append(t); values.append(ys); y0s.append(y0)
    return Observations(times, values, columns=list(columns)), torch.stack(y0s)


@pytest.fixture(scope="module")
def data():
    return lv_obs()


@pytest.mark.parametrize("seed", [1, 2])
def test_recovery_ragged_missing_unknown_initial_states(seed):
    obs, y0 = lv_obs(seed=seed)
    assert len({len(t) for t in obs.times}) == 4  # ragged
    assert any(torch.isnan(v).any() for v in obs.values)  # missing values
    est = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), obs, params=RATES, y0=y0 + 0.1)
    assert est.converged
    for k, v in TRUTH.items():
        lo, hi = est.ci[k]
        assert lo < v < hi, (seed, k, lo, v, hi)
        assert est.stderr[k] > 0
    z = (est.initial_conditions - y0)/est.ic_stderr
    assert z.abs().max() < 3.5
    assert est.n_data == sum(int(torch.isfinite(v).sum()) for v in obs.values)
    assert est.n_varys == 4 + 8


def test_interval_coverage_over_many_datasets():
    "The 95% intervals are calibrated: over 20 simulated datasets about 95% of the 80 intervals hold the truth."
    hits, total = 0, 0
    for seed in range(100, 120):
        obs, y0 = lv_obs(seed=seed, B=3, n=20)
        est = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), obs, params=RATES, y0=y0 + 0.1)
        hits += sum(est.ci[k][0] < v < est.ci[k][1] for k, v in TRUTH.items()); total += 4
    assert 0.85 <= hits/total <= 1.0, hits


def test_result_is_written_into_the_model_and_fixed_parameters_stay(data):
    obs, y0 = data
    m = LotkaVolterra(1.4, 0.9, 2.8, 1.1)
    est = estimate(m, obs, params={**RATES, "beta": Param(1.0, fixed=True)}, y0=y0 + 0.1)
    assert est.fixed == ["beta"] and "beta" not in est.stderr
    assert est.params["beta"] == 1.0 and param_dict(m) == pytest.approx(est.params)
    assert m.model_params.dtype == torch.float32
    assert "beta" in est.report() and "(fixed)" in est.report()


def test_bounds_hold_the_estimate_inside(data):
    obs, y0 = data
    est = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), obs, params={"alpha": Param(lower=1.0, upper=1.45), "beta": Param(positive=True)},
                   y0=y0 + 0.1)
    # the unconstrained optimum (about 1.5) lies outside: it stops at the bound
    assert 1.0 < est.params["alpha"] <= 1.45 and est.params["alpha"] > 1.449
    assert est.bounds["alpha"] == (1.0, 1.45)


def test_learned_noise_scales(data):
    g = torch.Generator().manual_seed(5)
    obs, y0 = data
    noisy = [v.clone() for v in obs.values]
    for v in noisy: v[:, 1] += 0.2*torch.randn(v.shape[0], generator=g, **f64)  # predator column much noisier
    obs2 = Observations(obs.times, noisy, columns=obs.columns)
    est = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), obs2, params=RATES, y0=y0 + 0.1, weights="learn")
    s = est.sigma
    assert s["prey"] == pytest.approx(0.05, rel=0.25) and s["predator"] == pytest.approx(math.hypot(0.05, 0.2), rel=0.25)
    assert est.redchi == pytest.approx(1.0, rel=0.1)  # residuals in units of their own noise scale
    assert all(est.ci[k][0] < v < est.ci[k][1] for k, v in TRUTH.items())
    assert "learned" in est.report()


def test_fixed_weights_and_log_loss(data):
    obs, y0 = data
    w = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), obs, params=RATES, y0=y0 + 0.1, weights=[1.0, 4.0])
    assert all(w.ci[k][0] < v < w.ci[k][1] for k, v in TRUTH.items())
    lg = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), obs, params=RATES, y0=y0 + 0.1, loss="log", ic_positive=True)
    assert all(abs(lg.params[k] - v) < 4*lg.stderr[k] for k, v in TRUTH.items())
    assert (lg.initial_conditions > 0).all()


def test_partial_observation_with_given_start_for_the_hidden_state(data):
    obs, y0 = data
    prey = Observations(obs.times, [v[:, :1] for v in obs.values], columns=["prey"])
    with pytest.raises(ValueError, match="give starting values with y0"):
        estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), prey, params=RATES, observe=[0])
    # prey alone cannot tell beta from the predators' scale (beta*y is all the prey sees): the errors say so
    with pytest.warns(FitWarning, match="the data do not determine every parameter: beta, y0"):
        free = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), prey, params=RATES, observe=[0], y0=y0 + 0.1)
    assert free.stderr["beta"] == math.inf and free.ci["beta"] == (-math.inf, math.inf)
    assert free.not_identifiable[0] == "beta" and all(re.fullmatch(r"y0\[\d, 1\]", n) for n in free.not_identifiable[1:])  # predators
    assert "[[Not identifiable]]" in free.report() and re.search(r"beta\s*: [0-9.]+ \+/- inf \(not identifiable", free.report())
    assert all(math.isfinite(free.stderr[k]) for k in ("alpha", "delta", "gamma"))
    # with beta fixed, and a longer record (16 time units) fitted by multiple shooting, the prey alone pin the other rates down
    obs16, y16 = lv_obs(seed=2, t_end=16, n=60)
    prey16 = Observations(obs16.times, [v[:, :1] for v in obs16.values], columns=["prey"])
    est = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), prey16, params={**RATES, "beta": Param(1.0, fixed=True)}, observe=[0], y0=y16 + 0.1,
                   shooting=4)
    assert est.converged and all(est.ci[k][0] < v < est.ci[k][1] for k, v in TRUTH.items() if k != "beta")
    total = Observations(obs.times, [v.sum(1, keepdim=True) for v in obs.values], columns=["total"])
    est2 = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), total, params=RATES, observe=lambda y: y.sum(-1, keepdim=True), y0=y0 + 0.1)
    assert est2.ssr < 10*est.ssr and est2.n_data > 0


def test_multiple_shooting_rescues_a_bad_start(data):
    obs, y0 = data
    bad = (2.5, 1.8, 4.0, 1.3)
    single = estimate(LotkaVolterra(*bad), obs, params=RATES, y0=y0 + 0.1, max_iter=30, horizons=None)  # plain single shooting
    multi = estimate(LotkaVolterra(*bad), obs, params=RATES, y0=y0 + 0.1, shooting=4)
    assert multi.ssr < 0.1*single.ssr
    assert all(multi.ci[k][0] < v < multi.ci[k][1] for k, v in TRUTH.items())
    grow = estimate(LotkaVolterra(*bad), obs, params=RATES, y0=y0 + 0.1, horizons=(0.3, 0.6))
    assert grow.ssr == pytest.approx(multi.ssr, rel=1e-6)
    auto = estimate(LotkaVolterra(*bad), obs, params=RATES, y0=y0 + 0.1)  # the default: a plain fit, then growing horizons when it misses
    assert auto.ssr == pytest.approx(multi.ssr, rel=1e-6) and "refit over growing horizons" in auto.message


def test_several_starts_summary(data):
    obs, y0 = data
    est = estimate(LotkaVolterra(1.2, 0.8, 2.5, 1.2), obs, params=RATES, y0=y0 + 0.1, starts=8, seed=0)
    assert sum(g["count"] for g in est.starts) == 8
    assert est.starts[0]["loss"] == min(g["loss"] for g in est.starts)
    assert all(est.ci[k][0] < v < est.ci[k][1] for k, v in TRUTH.items())
    given = torch.tensor([[1.4, 0.9, 2.8, 1.1], [1.6, 1.1, 3.2, 0.9]], **f64)
    est2 = estimate(LotkaVolterra(), obs, params=RATES, y0=y0 + 0.1, starts=given)
    assert sum(g["count"] for g in est2.starts) == 2
    with pytest.raises(ValueError, match="outside the parameters' bounds"):
        estimate(LotkaVolterra(), obs, params=RATES, y0=y0 + 0.1, starts=-given)


def test_profile_likelihood_agrees_with_standard_errors(data):
    obs, y0 = data
    est = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), obs, params=RATES, y0=y0 + 0.1)
    pr = est.profile("gamma", n=9)
    assert pr.interval[0] == pytest.approx(est.ci["gamma"][0], rel=0.01) and pr.interval[1] == pytest.approx(est.ci["gamma"][1], rel=0.01)
    assert float(pr.delta.min()) < 0.01 and (pr.delta >= -1e-6).all()
    with pytest.raises(ValueError, match="not a fitted parameter"):
        est.profile("sigma")


def test_predict_band_and_residuals(data):
    obs, y0 = data
    est = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), obs, params=RATES, y0=y0 + 0.1)
    ts = torch.linspace(0, 8, 50, **f64)
    t, mean, lo, hi = est.predict(2, ts=ts)
    with torch.no_grad(): true = simulate(LotkaVolterra(**TRUTH).double(), y0[2:3], ts, rtol=1e-10, atol=1e-12)[0]
    inside = ((lo <= true) & (true <= hi)).double().mean()
    assert inside > 0.8  # a pointwise 95% band covers the true curve almost everywhere
    assert (hi - lo).max() < 0.2
    tr, r = est.residuals(2)
    assert r.shape == obs.values[2].shape and torch.isnan(r).sum() == torch.isnan(obs.values[2]).sum()
    with pytest.raises(ValueError, match="unknown trajectory"):
        est.predict("nope")


def test_plots_return_fig_and_ax(data):
    import matplotlib.pyplot as plt
    obs, y0 = data
    est = estimate(LotkaVolterra(1.4, 0.9, 2.8, 1.1), obs, params=RATES, y0=y0 + 0.1)
    for fig, ax in (est.plot_fit(1), est.plot_residuals(), est.plot_traces(), est.profile("alpha", n=5).plot()):
        assert fig is ax.figure
        plt.close(fig)
    fig, ax = plt.subplots()
    assert est.plot_fit(0, ax=ax)[1] is ax
    plt.close(fig)


def test_simulated_dataset_and_first_observation_initial_conditions():
    data = create_sim_dataset(VDP(0.3), torch.linspace(0, 10, 25), num_samples=5, sigma_noise=0.01, seed=0)
    est = estimate(VDP(0.2), data, params={"mu": Param(positive=True)})
    assert est.ci["mu"][0] < 0.3 < est.ci["mu"][1]
    first = estimate(VDP(0.2), data, initial_conditions="first")
    assert first.ic_stderr is None and first.n_varys == 1
    ts, ys = data.tensors()
    given = estimate(VDP(0.2), data, initial_conditions=ys[:, 0])
    assert given.params["mu"] == pytest.approx(first.params["mu"], rel=1e-6)


class AbsDecay(nn.Module):
    "dy/dt = -k |y|: the complex step cannot go through abs, forward mode can."
    dim = 1
    autonomous = True
    def __init__(self, k=0.5):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(k))
    def forward(self, t, y): return -self.k*y.abs()


def test_non_analytic_model_uses_forward_mode():
    t = torch.linspace(0, 3, 20, **f64)
    obs = Observations([t], [2.0*torch.exp(-0.8*t)[:, None]], columns=["y"])
    est = estimate(AbsDecay(0.5), obs, params={"k": Param(positive=True)})
    assert est._res.mode == "forward" and est.jacobian == "forward" and "central differences" not in est.message
    assert est.params["k"] == pytest.approx(0.8, rel=1e-5)
    assert est.initial_conditions[0, 0].item() == pytest.approx(2.0, rel=1e-5)


class Forced(nn.Module):
    "dy/dt = -k y + sin(t): depends on absolute time."
    dim = 1
    def __init__(self): super().__init__(); self.k = nn.Parameter(torch.tensor(1.0))
    def forward(self, t, y): return -self.k*y + torch.sin(t)


@pytest.mark.parametrize("kw,match,exc", [
    (dict(params={"nope": 1.0}), "unknown parameter", ValueError),
    (dict(params={k: Param(1.0, fixed=True) for k in TRUTH}), "every parameter is fixed", ValueError),
    (dict(params={"alpha": "x"}), "needs params", TypeError),
    (dict(params={"alpha": Param(value=-1.0, positive=True)}), "not strictly inside", ValueError),
    (dict(loss="huber"), "unknown loss", ValueError),
    (dict(weights=[1.0]), "positive finite numbers", ValueError),
    (dict(weights="heavy"), "unknown weights", ValueError),
    (dict(shooting=0), "positive integer", ValueError),
    (dict(continuity=-1.0), "positive continuity", ValueError),
    (dict(initial_conditions="guess"), "initial_conditions must be", ValueError),
    (dict(initial_conditions=torch.ones(3, 2)), "tensor", ValueError),
    (dict(initial_conditions="first", shooting=2), "multiple shooting", ValueError),
    (dict(horizons=(1.5,)), "fractions", ValueError),
    (dict(horizons=(0.5,), shooting=2), "either horizons or shooting", ValueError),
    (dict(observe=[0]), "lists 1 states", ValueError),
    (dict(observe=[0, 5]), "outside", ValueError),
    (dict(observe="prey"), "observe as", TypeError),
    (dict(starts=0), "starts as a positive integer", ValueError),
    (dict(y0=torch.ones(3)), "y0 as", ValueError),
])
def test_bad_arguments(data, kw, match, exc):
    obs, y0 = data
    kw = {"y0": y0, **kw}
    with pytest.raises(exc, match=match):
        estimate(LotkaVolterra(), obs, **kw)


def test_bad_inputs():
    obs, y0 = lv_obs(B=2)
    with pytest.raises(TypeError, match="Observations"):
        estimate(LotkaVolterra(), {"t": 1})
    with pytest.raises(TypeError, match="torch.nn.Module"):
        estimate(lambda t, y: y, obs)
    neg = Observations(obs.times, [v - 10 for v in obs.values], columns=obs.columns)
    with pytest.raises(ValueError, match="positive observations"):
        estimate(LotkaVolterra(), neg, loss="log")
    t = [torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.5, 1.0, 2.0])]
    f = Observations(t, [torch.ones(3, 1), torch.ones(3, 1)])
    with pytest.raises(ValueError, match="autonomous"):
        estimate(Forced(), f, y0=torch.ones(1))


def test_hopeless_start_stops_with_a_clear_error():
    t = torch.linspace(0, 5, 20, **f64)
    obs = Observations([t], [torch.ones(20, 1, **f64)], columns=["y"])
    class Blowup(nn.Module):
        dim, autonomous = 1, True
        def __init__(self): super().__init__(); self.k = nn.Parameter(torch.tensor(50.0))
        def forward(self, t, y): return self.k*y**3
    with pytest.raises(DivergenceError, match="give no solution of Blowup: dopri5 stopped"):
        estimate(Blowup(), obs, initial_conditions="first")
