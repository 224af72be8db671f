"Derivatives that say what they are: the complex step, else forward mode, else central differences, recorded and stated."
import pytest
import torch

from paramfittorchdemo import FunctionODE, SimODEData, estimate, fit
from paramfittorchdemo.observations import Observations
from paramfittorchdemo.solvers import ParamSpec, broadcasts, integrate, jacobian_mode, solve_with_jacobian

f64 = dict(dtype=torch.float64)


class NoJvp(torch.autograd.Function):
    "exp with a backward formula but no forward-mode one: autograd works, the complex step and forward mode do not."
    @staticmethod
    def forward(ctx, x):
        y = x.real.exp()  # (drops an imaginary part: no complex step either)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g): return g*ctx.saved_tensors[0]


def decay(g):
    "y0' = -k1 g(y0), y1' = k1 y0 - k2 y1: with g the identity, abs, a clamp or a where."
    return lambda t, y, k1, k2: torch.stack([-k1*g(y[..., 0]), k1*y[..., 0] - k2*y[..., 1]], -1)


SMOOTH, ABS = decay(lambda x: x), decay(torch.abs)
CLAMP = decay(lambda x: x.clamp_min(0.0))
WHERE = decay(lambda x: torch.where(x > 0, x, 0.1*x))
NOJVP = decay(lambda x: NoJvp.apply(x) - 1)


def mode_of(f, dim=2, states=None, t=None, **params):
    m = FunctionODE(f, dim, **params).double()
    spec = ParamSpec.of(m)
    theta = spec.vector(m)
    return jacobian_mode(m, spec, theta, dim, broadcasts(m, spec, theta, dim), states, t)


@pytest.mark.parametrize("f, want", [(SMOOTH, "complex"), (ABS, "forward"), (CLAMP, "forward"), (WHERE, "forward"),
                                     (NOJVP, "central")])
def test_the_mode_is_the_first_exact_one_that_agrees_with_autograd(f, want):
    assert mode_of(f, k1=0.2, k2=0.05) == want


def test_models_valid_only_inside_the_datas_range_are_checked_there():
    "b2 y / t at t = 0 and (y/b1)^0.5 at negative states are not derivatives' failures: checked at the data, the complex step applies."
    g = lambda t, y, b1, b2: b1*(y/b1)**0.5 - b2*y/t
    assert mode_of(g, 1, b1=2.0, b2=0.5) == "central"  # random states of both signs at t = 0: NaN and inf
    assert mode_of(g, 1, torch.tensor([[1.0], [2.0]], **f64), 5.0, b1=2.0, b2=0.5) == "complex"


@pytest.mark.parametrize("method", ["dopri5", "rodas5p"])
def test_forward_mode_jacobians_agree_with_the_complex_step_and_differences(method):
    "On a smooth model forward mode and the complex step differentiate the same steps: they agree to rounding."
    m = FunctionODE(SMOOTH, 2, k1=0.7, k2=0.3).double()
    spec = ParamSpec.of(m)
    theta = torch.tensor([[0.7, 0.3], [0.9, 0.2]], **f64)
    y0, ts = torch.tensor([[1.0, 0.5]], **f64), torch.linspace(0, 5, 11, **f64)
    kw = dict(method=method, rtol=1e-8, atol=1e-10)
    pc, jc, _ = solve_with_jacobian(m, spec, theta, y0, ts, mode="complex", **kw)
    pf, jf, alive = solve_with_jacobian(m, spec, theta, y0, ts, mode="forward", **kw)
    pd, jd, _ = solve_with_jacobian(m, spec, theta, y0, ts, mode="central", **kw)
    assert alive.all()
    torch.testing.assert_close(pf, pc, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(jf, jc, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(jf, jd, rtol=1e-4, atol=1e-6)


def test_forward_mode_through_abs_agrees_with_differences():
    m = FunctionODE(ABS, 2, k1=0.7, k2=0.3).double()
    spec = ParamSpec.of(m)
    theta, y0, ts = torch.tensor([[0.7, 0.3]], **f64), torch.tensor([[1.0, 0.5]], **f64), torch.linspace(0, 5, 11, **f64)
    _, jf, _ = solve_with_jacobian(m, spec, theta, y0, ts, mode="forward", rtol=1e-10, atol=1e-12)
    _, jd, _ = solve_with_jacobian(m, spec, theta, y0, ts, mode="central", rtol=1e-10, atol=1e-12)
    assert jf.abs().max() > 0.1
    torch.testing.assert_close(jf, jd, rtol=1e-5, atol=1e-7)


def _data(f, dim=2, y0=(1.0, 0.0), **truth):
    ts = torch.linspace(0, 30, 31, **f64)
    with torch.no_grad():
        ys = integrate(FunctionODE(f, dim, **truth).double(), torch.tensor([y0], **f64), ts, "dopri5", rtol=1e-11, atol=1e-13)
    return ts, ys


@pytest.mark.parametrize("f, want", [(SMOOTH, "complex"), (ABS, "forward"), (NOJVP, "central")])
def test_estimate_records_its_derivatives_and_says_when_they_are_differences(f, want):
    ts, ys = _data(f, k1=0.2, k2=0.05)
    noise = 1e-3*torch.randn(ys.shape, generator=torch.Generator().manual_seed(0), **f64)
    r = estimate(FunctionODE(f, 2, k1=0.3, k2=0.03).double(), Observations.from_arrays(ts, ys + noise), rtol=1e-10, atol=1e-12)
    assert r.jacobian == want and r.converged, r.message
    assert ("derivatives by central differences" in r.message) == (want == "central"), r.message
    assert abs(r.params["k1"]/0.2 - 1) < 0.02 and abs(r.params["k2"]/0.05 - 1) < 0.02


@pytest.mark.parametrize("f, want", [(SMOOTH, "complex"), (CLAMP, "forward"), (NOJVP, "central")])
def test_fit_records_its_derivatives_and_says_when_they_are_differences(f, want):
    ts, ys = _data(f, k1=0.2, k2=0.05)
    r = fit(FunctionODE(f, 2, k1=0.3, k2=0.03).double(), SimODEData(ts, [ys[0]]))
    assert r.jacobian == want and r.converged, r.message
    assert ("derivatives by central differences" in r.message) == (want == "central"), r.message
    assert abs(r.params["k1"]/0.2 - 1) < 1e-3 and abs(r.params["k2"]/0.05 - 1) < 1e-3


def test_an_initial_state_fitted_near_zero_keeps_its_error_bar():
    "Noise-free data from y1(0) = 0: the fitted y1(0) is about 1e-14, which the data determine (it is not 'not identifiable')."
    ts, ys = _data(SMOOTH, k1=0.2, k2=0.05)
    r = estimate(FunctionODE(SMOOTH, 2, k1=0.3, k2=0.03).double(), Observations.from_arrays(ts, ys), rtol=1e-10, atol=1e-12)
    assert r.converged and r.not_identifiable == [] and torch.isfinite(r.ic_stderr).all(), (r.message, r.not_identifiable)
    assert abs(float(r.initial_conditions[0, 1])) < 1e-8
