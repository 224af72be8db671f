import math

import pytest
import torch

from paramfittorchdemo import DivergenceError, Lorenz, LotkaVolterra, NeuralDiffEq, SimODEData, VDP, create_sim_dataset, param_dict
from paramfittorchdemo.fitting import FitResult, fit


@pytest.fixture(scope="module")
def lv_data():
    return create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 10.0, 0.1), num_samples=10, sigma_noise=0.1,
                              initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)


def rel(a: dict, b: dict): return max(abs(a[k] - b[k])/abs(b[k]) for k in b)


@pytest.mark.parametrize("true,start,kw", [
    (VDP(0.3), VDP(0.1), dict(ts=torch.linspace(0, 10, 10))),
    (LotkaVolterra(), LotkaVolterra(1.6, 1.1, 2.7, 1.2),
     dict(ts=torch.arange(0, 10, 0.1), initial_conditions_default=torch.tensor([2.5, 2.5]))),
    (Lorenz(), Lorenz(10.2, 28.2, 3.0),
     dict(ts=torch.arange(0, 4, 0.05), num_samples=6, initial_conditions_default=torch.tensor([1.0, 0.0, 0.0]))),
])
def test_noise_free_data_gives_the_true_parameters(true, start, kw):
    data = create_sim_dataset(true, sigma_noise=0.0, seed=0, **kw)
    r = fit(start, data, rtol=1e-9, atol=1e-11)
    assert isinstance(r, FitResult) and r.converged and r.optimizer == "lm" and r.jacobian == "complex"
    assert rel(r.params, param_dict(true)) < 1e-5
    assert r.params == param_dict(start)  # written into the model


def test_noisy_lv_fit_and_history(lv_data):
    m = LotkaVolterra(1.6, 1.1, 2.7, 1.2)
    r = fit(m, lv_data)
    assert rel(r.params, param_dict(LotkaVolterra())) < 0.02
    assert r.history[0] > r.history[-1] == pytest.approx(r.loss)
    assert r.stats.solves >= r.iterations and r.stats.nfe > 0 and r.seconds > 0
    assert m.model_params.dtype == torch.float32 and "converged" in repr(r)


def test_a_fit_started_at_its_optimum_stops_without_a_trial(lv_data):
    m = LotkaVolterra(1.6, 1.1, 2.7, 1.2)
    first = fit(m, lv_data)
    again = fit(m, lv_data)  # the model now holds the optimum
    assert again.converged and rel(again.params, first.params) < 1e-6
    assert again.stats.solves <= 3  # loose solve, hand-over step, and no confirming trial at the requested tolerance


def test_stopping_rule_reaches_a_tighter_optimum_to_its_tolerance(lv_data):
    ref = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, rtol=1e-10, atol=1e-12, ftol=1e-15, xtol=1e-12)
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data)  # defaults: rtol=1e-6, ftol=1e-10
    assert rel(r.params, ref.params) < 2e-5  # the predicted-gain stop does not stop early
    assert r.stats.solves < ref.stats.solves


def test_float32_fit(lv_data):
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, dtype=None, rtol=1e-5, atol=1e-7)
    r64 = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data)
    assert rel(r.params, r64.params) < 1e-3


def test_rk4_fit(lv_data):
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, method="rk4", step_size=0.05)
    assert r.converged and rel(r.params, param_dict(LotkaVolterra())) < 0.02


def test_lbfgs_reaches_the_lm_optimum(lv_data):
    lm = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data)
    lb = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, optimizer="lbfgs", max_iter=200)
    assert lb.optimizer == "lbfgs" and rel(lb.params, lm.params) < 1e-3


def test_multi_start(lv_data):
    starts = torch.tensor([[1.6, 1.1, 2.7, 1.2], [1.4, 0.9, 3.2, 0.9], [1.0, 0.5, 2.0, 0.5]], dtype=torch.float64)
    r = fit(LotkaVolterra(), lv_data, starts=starts)
    single = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data)
    assert r.starts["theta"].shape == (3, 4) and r.starts["loss"].shape == (3,)
    torch.testing.assert_close(r.starts["theta"][0], torch.tensor(list(single.params.values()), dtype=torch.float64), rtol=1e-3, atol=0)
    assert r.loss == pytest.approx(r.starts["loss"].min().item())
    assert rel(r.params, single.params) < 1e-3  # the best start is written into the model


def test_multi_start_survives_a_diverging_start(lv_data):
    starts = torch.tensor([[1.6, 1.1, 2.7, 1.2], [60.0, -5.0, 3.0, 1.0]], dtype=torch.float64)
    r = fit(LotkaVolterra(), lv_data, starts=starts)
    assert math.isinf(r.starts["loss"][1]) and rel(r.params, param_dict(LotkaVolterra())) < 0.02


class NonAnalytic(torch.nn.Module):
    "Exponential decay written with abs(): not complex-analytic, so fit uses central differences."
    dim = 1
    def __init__(self, k):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(k))
    def forward(self, t, y): return -self.k*y.abs()


def test_non_analytic_model_uses_forward_mode():
    data = create_sim_dataset(NonAnalytic(0.7), torch.linspace(0, 3, 10), sigma_noise=0.0,
                              initial_conditions_default=torch.tensor([1.0]), seed=0)
    r = fit(NonAnalytic(0.3), data)
    assert r.jacobian == "forward" and abs(r.params["k"] - 0.7) < 1e-5 and "central differences" not in r.message


def test_neural_ode_uses_adam_then_lbfgs():
    data = create_sim_dataset(VDP(0.2), torch.linspace(0, 3, 10), num_samples=4, sigma_noise=0.0, seed=0)
    m = NeuralDiffEq(2)
    before = [p.detach().clone() for p in m.parameters()]
    r = fit(m, data, adam_steps=30, max_iter=30)
    assert r.optimizer == "adam-lbfgs" and r.jacobian == "autograd" and r.loss < r.history[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))
    assert all(torch.isfinite(p).all() for p in m.parameters())


@pytest.mark.parametrize("kw,match,exc", [
    (dict(optimizer="newton"), "unknown optimizer", ValueError),
    (dict(max_iter=0), "max_iter", ValueError),
    (dict(xtol=-1.0), "xtol", ValueError),
    (dict(method="rk45"), "unknown solver method", ValueError),
    (dict(rtol=0.0), "rtol", ValueError),
    (dict(starts=torch.ones(2, 3)), r"starts as a tensor \(K, 4\)", ValueError),
    (dict(starts=torch.full((2, 4), float("nan"))), "NaN or inf in starts", ValueError),
    (dict(starts=torch.ones(2, 4), optimizer="lbfgs"), "only with optimizer='lm'", ValueError),
])
def test_bad_arguments(lv_data, kw, match, exc):
    m = LotkaVolterra(1.6, 1.1, 2.7, 1.2)
    with pytest.raises(exc, match=match):
        fit(m, lv_data, **kw)
    assert m.model_params.tolist() == pytest.approx([1.6, 1.1, 2.7, 1.2])


def test_bad_data(lv_data):
    with pytest.raises(ValueError, match="dimension 3"):
        fit(Lorenz(), lv_data)
    ragged = SimODEData([torch.linspace(0, 1, 4), torch.linspace(0, 2, 4)], [torch.zeros(4, 2)]*2)
    with pytest.raises(ValueError, match="same time grid"):
        fit(VDP(0.3), ragged)
    with pytest.raises(ValueError, match="at most 100 parameters"):
        fit(NeuralDiffEq(2), lv_data, optimizer="lm")


def test_fit_that_cannot_start():
    data = create_sim_dataset(LotkaVolterra(), torch.linspace(0, 10, 20), initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)
    m = LotkaVolterra(200.0, -5.0, 3.0, 1.0)
    with pytest.raises(DivergenceError, match="give no solution: dopri5 stopped"):
        fit(m, data)
    assert m.model_params.tolist() == pytest.approx([200.0, -5.0, 3.0, 1.0])


def test_adam_divergence_keeps_the_best_parameters_seen():
    "A learning rate that blows Adam up stops fit with DivergenceError; the model gets the best finite parameters seen."
    data = create_sim_dataset(VDP(0.2), torch.linspace(0, 3, 10), num_samples=4, sigma_noise=0.0, seed=0)
    torch.manual_seed(0)
    m = NeuralDiffEq(2)
    with pytest.raises(DivergenceError, match="keeps the best parameters seen"):
        fit(m, data, adam_steps=200, max_iter=5, lr=1e6, method="rk4", step_size=0.1)
    assert all(torch.isfinite(p).all() for p in m.parameters())
