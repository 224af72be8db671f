"""The implicit solvers (issue 20): the Rosenbrock methods rodas5p and rodas4 (`solvers.implicit.rosenbrock`), method='auto', and the
models' written-out Jacobians, against known answers: exact solutions, scipy's Radau at rtol 1e-12, autograd and central differences."""
import functools
import math
import time

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from torchdiffeq import odeint

from paramfittorchdemo import VDP, FunctionODE, LotkaVolterra, SimODEData, estimate, fit, simulate
from paramfittorchdemo.solvers import (RODAS5P, ParamSpec, SolveStats, SolverError, dopri5, implicit_method, integrate, rosenbrock,
                                       small_work_threads, solve_with_jacobian, torchdiffeq_auto, with_parameters)

f64 = dict(dtype=torch.float64)
METHODS = ("rodas5p", "rodas4")
ORDER = {"rodas5p": 5, "rodas4": 4}  # order of the solution
DENSE_ORDER = {"rodas5p": 4, "rodas4": 3}  # order of the dense output between steps


@pytest.fixture(autouse=True)
def _one_thread():
    "One intra-op thread, as simulate and fit run small work: the backward of many tiny LU solves crawls on several threads of a busy CPU."
    with small_work_threads(0): yield


class Plain(torch.nn.Module):
    "A model's forward without its written-out Jacobian: the solver differentiates the forward (complex step)."
    autonomous = True
    def __init__(self, model): super().__init__(); self.model = model
    def forward(self, t, y): return self.model(t, y)


def robertson(t, y, k1, k2, k3):
    "Robertson's chemical kinetics: rates 0.04, 3e7 and 1e4, the classic stiff test problem."
    a, b, c = y.unbind(-1)
    return torch.stack([-k1*a + k3*b*c, k1*a - k2*b*b - k3*b*c, k2*b*b], -1)


def robertson_model(): return FunctionODE(robertson, 3, k1=0.04, k2=3e7, k3=1e4).double()


def mixed_error(ys, ref, rtol: float, atol: float) -> float:
    "The largest error of ys against ref, in units of the tolerance rtol |ref| + atol."
    return float(np.max(np.abs(np.asarray(ys, dtype=np.float64) - ref)/(rtol*np.abs(ref) + atol)))


# ---------------------------------------------------------------- order of accuracy
def one_step(f, y0, t0: float, h: float, method: str):
    "One step of size h from (t0, y0), accepted whatever its error: the states at t0 + h/2 (dense output) and at t0 + h."
    st = SolveStats()
    with torch.no_grad():
        ys = rosenbrock(f, y0, torch.tensor([t0, t0 + h/2, t0 + h], **f64), rtol=1e3, atol=1e3, method=method, first_step=h, stats=st)
    assert st.steps == 1 and st.rejected == 0
    return ys[0, 1].numpy(), ys[0, 2].numpy()


def rates(errors: list) -> np.ndarray:
    "Observed orders of the error from halving the step: log2 of the ratio of successive errors."
    e = np.asarray(errors)
    return np.log2(e[:-1]/e[1:])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("jacobian", ["own", "complex step"])
def test_local_error_and_dense_output_have_the_methods_orders(method, jacobian):
    "Lotka-Volterra, a nonlinear system: one step's error falls as h^(p+1), the dense output's at mid-step as h^(q+1)."
    lv = LotkaVolterra().double()
    f = lv if jacobian == "own" else Plain(lv)
    rhs = lambda t, y: lv(None, torch.tensor(y, **f64)).detach().numpy()
    y0, hs = [1.0, 2.0], [0.1*2**-k for k in range(4)]
    step, mid = [], []
    for h in hs:
        ref = solve_ivp(rhs, (0, h), y0, method="DOP853", rtol=3e-14, atol=1e-16, t_eval=[h/2, h]).y.T
        half, full = one_step(f, torch.tensor([y0], **f64), 0.0, h, method)
        step.append(np.abs(full - ref[1]).max()); mid.append(np.abs(half - ref[0]).max())
    assert np.all(np.abs(rates(step)[1:] - (ORDER[method] + 1)) < 0.5), rates(step)
    assert np.all(np.abs(rates(mid)[1:] - (DENSE_ORDER[method] + 1)) < 0.5), rates(mid)


@pytest.mark.parametrize("method", METHODS)
def test_local_error_order_of_a_time_dependent_model(method):
    "dy/dt = -2 t y^2, y = 1/(1 + t^2): the stages' times and the df/dt terms keep the order."
    f = lambda t, y: -2*t*y*y
    exact = lambda t: 1/(1 + t*t)
    errors = []
    for h in [0.1*2**-k for k in range(5)]:
        _, full = one_step(f, torch.tensor([[exact(0.3)]], **f64), 0.3, h, method)
        errors.append(abs(full[0] - exact(0.3 + h)))
    assert np.all(np.abs(rates(errors)[-2:] - (ORDER[method] + 1)) < 0.5), rates(errors)


@pytest.mark.parametrize("method", METHODS)
def test_error_is_proportional_to_the_tolerance_between_steps_too(method):
    "A harmonic oscillator read at 1001 times: the interpolated states are as accurate as the tolerance asks, and follow it."
    osc = Plain(lambda t, y: torch.stack([y[..., 1], -y[..., 0]], -1))
    ts = torch.linspace(0, 10, 1001, **f64)
    exact = torch.stack([torch.cos(ts), -torch.sin(ts)], -1)
    errors = []
    for rtol in (1e-4, 1e-6, 1e-8):
        st = SolveStats()
        ys = rosenbrock(osc, torch.tensor([[1.0, 0.0]], **f64), ts, rtol, rtol*1e-2, method=method, stats=st)
        errors.append((ys[0] - exact).abs().max().item())
        assert errors[-1] < 10*rtol and st.steps < 300  # far fewer steps than output times
    slope = np.polyfit(np.log([1e-4, 1e-6, 1e-8]), np.log(errors), 1)[0]
    assert 0.8 < slope < 1.25, (errors, slope)


# ---------------------------------------------------------------- stiff problems against scipy's Radau at rtol 1e-12
@pytest.fixture(scope="module")
def robertson_reference():
    "Robertson from t = 0 to 1e5, at 22 times spread over ten decades: (ts, states (22, 3))."
    def rhs(t, y):
        a, b, c = y
        return [-0.04*a + 1e4*b*c, 0.04*a - 3e7*b*b - 1e4*b*c, 3e7*b*b]
    def jac(t, y):
        a, b, c = y
        return [[-0.04, 1e4*c, 1e4*b], [0.04, -6e7*b - 1e4*c, -1e4*b], [0.0, 6e7*b, 0.0]]
    T = np.concatenate([[0.0], np.logspace(-5, 5, 21)])
    sol = solve_ivp(rhs, (0, T[-1]), [1.0, 0.0, 0.0], method="Radau", t_eval=T, rtol=1e-12, atol=1e-20, jac=jac)
    assert sol.success
    return T, sol.y.T


@pytest.fixture(scope="module")
def vdp_reference():
    "Van der Pol with mu = 1000 from (2, 0), t = 0 to 3000 (four fast transitions), at 31 times: (ts, states (31, 2))."
    mu = 1000.0
    T = np.linspace(0, 3000, 31)
    sol = solve_ivp(lambda t, y: [mu*(y[0] - y[0]**3/3 - y[1]), y[0]/mu], (0, 3000), [2.0, 0.0], method="Radau", t_eval=T, rtol=1e-12,
                    atol=1e-14, jac=lambda t, y: [[mu*(1 - y[0]**2), -mu], [1/mu, 0.0]])
    assert sol.success
    return T, sol.y.T


CASES = [pytest.param(m, rtol, dt, id=f"{m}-{rtol:g}-{str(dt)[6:]}") for m in METHODS for rtol, dt in
         ((1e-6, torch.float64), (1e-4, torch.float64), (1e-4, torch.float32))]


@pytest.mark.parametrize("method,rtol,dtype", CASES)
def test_robertson_agrees_with_radau(robertson_reference, method, rtol, dtype):
    "Robertson to t = 1e5 (no Jacobian of its own: the complex step), within 10 tolerances of Radau at rtol 1e-12, float32 too."
    T, ref = robertson_reference
    atol = rtol*1e-4  # the intermediate species stays below 4e-5
    with torch.no_grad():
        ys = rosenbrock(robertson_model().to(dtype), torch.tensor([[1.0, 0.0, 0.0]], dtype=dtype), torch.tensor(T, dtype=dtype), rtol,
                        atol, method=method)
    assert mixed_error(ys[0].double(), ref, rtol, atol) < 10


_RODAS5P_PHASE = ("rodas5p's global error on VDP(1000) grows at each fast transition: 11, 14 and 16 tolerances at t = 800, 1600 and "
                  "2400 at rtol 1e-6 (rodas4: 1.7 to 2.3, scipy's Radau 0.8); its local order is right (see the order tests)")
VDP_CASES = [pytest.param(*p.values, id=p.id, marks=pytest.mark.xfail(strict=True, reason=_RODAS5P_PHASE))
             if p.id == "rodas5p-1e-06-float64" else
             p for p in CASES]


@pytest.mark.parametrize("method,rtol,dtype", VDP_CASES)
def test_stiff_van_der_pol_agrees_with_radau(vdp_reference, method, rtol, dtype):
    "VDP(1000) through four fast transitions (its own Jacobian), within 10 tolerances of Radau at rtol 1e-12."
    T, ref = vdp_reference
    atol = rtol*1e-2
    with torch.no_grad():
        ys = rosenbrock(VDP(1000.0).to(dtype), torch.tensor([[2.0, 0.0]], dtype=dtype), torch.tensor(T, dtype=dtype), rtol, atol,
                        method=method)
    assert mixed_error(ys[0].double(), ref, rtol, atol) < 10


# ---------------------------------------------------------------- derivatives: autograd and the complex step through the solve
STIFF = {"vdp": (lambda: VDP(1000.0).double(), torch.tensor([[2.0, 0.0], [1.0, 0.5]], **f64), torch.linspace(0, 2, 9, **f64)),
         "robertson": (robertson_model, torch.tensor([[1.0, 0.0, 0.0]], **f64), torch.tensor([0.0, 1e-3, 0.1, 1.0, 10.0], **f64))}


def loss_weights(problem: str) -> torch.Tensor:
    "Weights w of the loss sum(w * solution), (batch, time, state): random; 1e4 on Robertson's intermediate species (1e4 times smaller)."
    _, y0, ts = STIFF[problem]
    w = torch.rand(len(y0), len(ts), y0.shape[-1], generator=torch.Generator().manual_seed(0), **f64)
    return w*torch.tensor([1.0, 1e4, 1.0], **f64) if problem == "robertson" else w


@functools.cache
def central_gradient(problem: str) -> torch.Tensor:
    "The loss's gradient by central differences of rodas5p solves at rtol 1e-10: the reference, (P,)."
    make, y0, ts = STIFF[problem]
    w, spec = loss_weights(problem), ParamSpec.of(make())
    theta = spec.vector(make())
    out = []
    for p in range(len(theta)):
        d, loss = 1e-5*abs(theta[p].item()), []
        for sign in (1, -1):
            m = make()
            spec.load(m, theta + sign*d*torch.eye(len(theta), **f64)[p])
            with torch.no_grad(): loss.append((w*rosenbrock(m, y0, ts, 1e-10, 1e-14, max_steps=10**5)).sum().item())
        out.append((loss[0] - loss[1])/(2*d))
    return torch.tensor(out, **f64)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("problem", list(STIFF))
def test_derivatives_through_a_stiff_solve_agree(problem, method):
    """VDP(1000) (its own Jacobian) and Robertson (differentiated forward): the gradient of a loss by autograd through rosenbrock is the
    complex step's through the solve (solve_with_jacobian, as fit computes it), and both are the central differences'."""
    make, y0, ts = STIFF[problem]
    w, rtol = loss_weights(problem), 1e-7
    m = make()
    (w*rosenbrock(m, y0, ts, rtol, rtol*1e-4, method=method)).sum().backward()
    auto = torch.cat([p.grad.reshape(-1) for p in m.parameters()])
    spec = ParamSpec.of(m)
    _, jac, alive = solve_with_jacobian(m, spec, spec.vector(m)[None], y0, ts, method, rtol=rtol, atol=rtol*1e-4, mode="complex")
    assert alive.all()
    cs, scale = (w*jac[0]).flatten(1).sum(1), (w.abs()*jac[0].abs()).flatten(1).sum(1)  # scale: the sum without cancellations
    assert torch.all((auto - cs).abs() <= 1e-10*scale), (auto, cs)
    assert torch.all((auto - central_gradient(problem)).abs() <= 1e-4*scale), (auto, central_gradient(problem))


def test_derivatives_through_a_non_stiff_solve_agree_with_the_explicit_path():
    "Lotka-Volterra: the gradient through rodas5p is the one through dopri5, by autograd and by the complex step."
    y0, ts = torch.tensor([[2.5, 2.5], [1.0, 3.0]], **f64), torch.linspace(0, 2, 5, **f64)
    grads, jacs = {}, {}
    for method in ("rodas5p", "dopri5"):
        m = LotkaVolterra().double()
        integrate(m, y0, ts, method, rtol=1e-9, atol=1e-11).sum().backward()
        grads[method] = m.model_params.grad
        spec = ParamSpec.of(m)
        jacs[method] = solve_with_jacobian(m, spec, spec.vector(m)[None], y0, ts, method, rtol=1e-9, atol=1e-11)[1]
    torch.testing.assert_close(grads["rodas5p"], grads["dopri5"], rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(jacs["rodas5p"], jacs["dopri5"], rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(jacs["rodas5p"][0].sum((1, 2, 3)), grads["rodas5p"], rtol=1e-9, atol=1e-11)


def test_complex_step_under_auto_is_the_implicit_methods():
    "fit's derivatives under method='auto' (dopri5 hands the stiff solve over): those of the implicit method it names."
    m, y0, ts = VDP(1000.0).double(), torch.tensor([[2.0, 0.0]], **f64), torch.linspace(0, 2, 9, **f64)
    spec = ParamSpec.of(m)
    st = SolveStats()
    pred, jac, _ = solve_with_jacobian(m, spec, spec.vector(m)[None], y0, ts, "auto", rtol=1e-6, atol=1e-8, stats=st)
    assert st.switched == [True] and implicit_method(1e-6) in st.switch
    pred_i, jac_i, _ = solve_with_jacobian(m, spec, spec.vector(m)[None], y0, ts, implicit_method(1e-6), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(pred, pred_i, rtol=1e-14, atol=0)
    torch.testing.assert_close(jac, jac_i, rtol=1e-12, atol=0)


# ---------------------------------------------------------------- method='auto'
@pytest.mark.parametrize("rtol", [1e-6, 1e-4])
def test_auto_hands_over_only_the_stiff_group(rtol):
    "Two groups, VDP with mu = 1 and mu = 1000 (a parameter population, as fit solves it): only the second is switched."
    m, atol = VDP(1.0).double(), rtol*1e-2
    y0, ts = torch.tensor([[[2.0, 0.0]], [[2.0, 0.0]]], **f64), torch.linspace(0, 10, 11, **f64)
    solve = lambda mus, method, **kw: with_parameters(m, {"mu": torch.tensor(mus, **f64)[:, None]},
                                                       lambda f: integrate(f, y0[:len(mus)], ts, method, rtol=rtol, atol=atol, **kw))
    st = SolveStats()
    with torch.no_grad():
        ys = solve([1.0, 1000.0], "auto", groups=2, stats=st)
        explicit = solve([1.0, 3.0], "dopri5", groups=2)  # each group has its own steps: group 0 as it is solved beside any other
        implicit = with_parameters(m, {"mu": torch.tensor([[1000.0]], **f64)},  # the stiff group alone: its error alone sets the steps
                                   lambda f: integrate(f, y0[1:], ts, implicit_method(rtol), rtol=rtol, atol=atol)[0])
    assert st.switched == [False, True] and st.alive == [True, True]
    assert "handed 1 of 2 group(s) to an implicit method" in st.switch and "stiff" in st.switch
    assert f"{implicit_method(rtol)} solved it" in st.switch
    assert torch.equal(ys[0], explicit[0])
    torch.testing.assert_close(ys[1], implicit, rtol=1e-12, atol=1e-14)


def test_auto_on_a_problem_that_is_not_stiff_is_dopri5():
    m, y0, ts = LotkaVolterra().double(), torch.tensor([[2.5, 2.5], [1.0, 3.0]], **f64), torch.linspace(0, 10, 21, **f64)
    st = SolveStats()
    assert torch.equal(integrate(m, y0, ts, "auto", stats=st), integrate(m, y0, ts, "dopri5"))
    assert st.switched is None and st.switch == ""


def test_simulate_of_the_posts_problem_gives_torchdiffeqs_numbers():
    "The post's first cell: 30 VDP(0.5) trajectories, 1000 times; simulate's default ('auto') gives odeint's dopri5 bit for bit."
    torch.manual_seed(0)
    vdp = VDP(mu=0.5)
    ts = torch.linspace(0, 30.0, 1000)
    y0 = torch.tensor([0.01, 0.01]) + 0.2*torch.randn((30, 2))
    with torch.no_grad():
        assert torch.equal(simulate(vdp, y0, ts), odeint(vdp, y0, ts, method="dopri5").movedim(0, 1))


def test_simulate_hands_over_only_the_stiff_trajectory():
    "dx/dt = -k x with k a state: k = 1 is not stiff, k = 1e4 is. torchdiffeq's dopri5 keeps the first, rodas5p solves the second."
    m = FunctionODE(lambda t, y: torch.stack([-y[..., 1]*y[..., 0], torch.zeros_like(y[..., 1])], -1), 2).double()
    y0, ts = torch.tensor([[1.0, 1.0], [1.0, 1e4]], **f64), torch.linspace(0, 10, 6, **f64)
    st = SolveStats()
    with torch.no_grad():
        ys = torchdiffeq_auto(m, y0, ts, 1e-7, 1e-9, 100_000, None, None, st)
        assert torch.equal(simulate(m, y0, ts), ys)
        assert torch.equal(ys[0], odeint(m, y0[:1], ts, method="dopri5", rtol=1e-7, atol=1e-9)[:, 0])
        assert torch.equal(ys[1], rosenbrock(m, y0[1:], ts, 1e-7, 1e-9, method=implicit_method(1e-7))[0])
    assert st.switched == [False, True] and st.switch.startswith("dopri5 handed 1 of 2 trajectories to rodas5p") and "stiff" in st.switch
    torch.testing.assert_close(ys[0, :, 0], torch.exp(-ts), rtol=1e-5, atol=1e-8)
    assert ys[1, 1:, 0].abs().max() < 1e-8  # exp(-1e4 t): gone after the first output time



class FastVDP(torch.nn.Module):
    "Van der Pol in the Test Set's scaling, y2' = mu^2 ((1 - y1^2) y2 - y1); at mu = 1e6 its first transient lasts about 3e-13."
    autonomous = True
    def __init__(self, mu): super().__init__(); self.mu = mu
    def forward(self, t, y):
        y1, y2 = y[..., 0], y[..., 1]
        return torch.stack([y2, self.mu**2*((1 - y1*y1)*y2 - y1)], -1)


@pytest.mark.parametrize("groups", [None, 2])
def test_auto_hands_over_a_problem_too_stiff_for_any_explicit_step(groups):
    "At mu = 1e6 dopri5's step underflows at t = 0, before any stiffness check: auto hands it to the implicit method, which solves it."
    m, ts = FastVDP(1e6), torch.linspace(0, 2, 5, **f64)
    y0 = torch.tensor([[2.0, 0.0]]*(groups or 1), **f64)
    with pytest.raises(SolverError, match="dopri5 stopped.*the step size underflowed"):
        integrate(m, y0, ts, "dopri5", rtol=1e-6, atol=1e-6, groups=groups)
    st = SolveStats()
    ys = integrate(m, y0, ts, "auto", rtol=1e-6, atol=1e-6, groups=groups, stats=st)
    implicit = rosenbrock(m, y0, ts, 1e-6, 1e-6, method=implicit_method(1e-6), groups=groups)
    assert st.switched == [True]*(groups or 1) and "step size underflowed at a decaying mode" in st.switch, st.switch
    torch.testing.assert_close(ys, implicit, rtol=1e-12, atol=1e-14)
    ref = solve_ivp(lambda t, y: [y[1], 1e12*((1 - y[0]**2)*y[1] - y[0])], (0, 2), [2.0, 0.0], "Radau", t_eval=ts.numpy(),
                    rtol=1e-10, atol=1e-10, jac=lambda t, y: [[0, 1], [1e12*(-2*y[0]*y[1] - 1), 1e12*(1 - y[0]**2)]])
    np.testing.assert_allclose(ys[0].numpy(), ref.y.T, rtol=1e-4, atol=1e-4)


def test_simulate_hands_over_a_problem_too_stiff_for_any_explicit_step():
    "The same through simulate (torchdiffeq's dopri5 first): the underflow at a fast decaying mode goes to the implicit method."
    m, ts, y0 = FastVDP(1e6), torch.linspace(0, 2, 5, **f64), torch.tensor([[2.0, 0.0]], **f64)
    st = SolveStats()
    ys = torchdiffeq_auto(m, y0, ts, 1e-6, 1e-6, 100_000, None, None, st)
    assert st.switched == [True]
    torch.testing.assert_close(ys, rosenbrock(m, y0, ts, 1e-6, 1e-6, method=implicit_method(1e-6)), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("groups", [None, 2])
def test_a_blow_up_under_auto_stays_dopri5s_error(groups):
    "dy/dt = y^2 from 1 underflows near t = 1 with a growing mode: no stiffness, so auto reports dopri5's blow-up, not a hand-over."
    y0 = torch.ones(groups or 1, 1, **f64)
    st = SolveStats()
    with pytest.raises(SolverError, match="dopri5 stopped") as e:
        integrate(FunctionODE(lambda t, y: y**2, 1), y0, torch.linspace(0, 2, 5, **f64), "auto", groups=groups, stats=st)
    assert e.value.kind == "underflow" and not (st.switched and any(st.switched))


# ---------------------------------------------------------------- the model's own Jacobian
class CountingVDP(VDP):
    "VDP whose written-out Jacobian counts its calls."
    calls = 0
    def jacobian(self, t, state):
        type(self).calls += 1
        return super().jacobian(t, state)


def test_the_models_own_jacobian_is_used():
    y0, ts = torch.tensor([[2.0, 0.0], [1.0, 0.5]], **f64), torch.linspace(0, 100, 5, **f64)
    CountingVDP.calls = 0
    own, plain = SolveStats(), SolveStats()
    with torch.no_grad():
        ys = rosenbrock(CountingVDP(1000.0).double(), y0, ts, 1e-6, 1e-8, stats=own)
        ref = rosenbrock(Plain(VDP(1000.0).double()), y0, ts, 1e-6, 1e-8, stats=plain)
    assert CountingVDP.calls == own.jacobians > 0
    assert own.steps == plain.steps and plain.nfe - own.nfe == 2*own.jacobians  # the complex step: one evaluation per state
    torch.testing.assert_close(ys, ref, rtol=1e-9, atol=1e-12)


def test_the_models_own_jacobian_is_used_for_a_parameter_population():
    "fit solves K parameter vectors at once, mu of shape (K, 1): the Jacobian broadcasts, and each copy is solved as on its own."
    m, ts = CountingVDP(1.0).double(), torch.linspace(0, 20, 5, **f64)
    y0 = torch.tensor([[[2.0, 0.0]], [[2.0, 0.0]]], **f64)
    CountingVDP.calls = 0
    with torch.no_grad():
        ys = with_parameters(m, {"mu": torch.tensor([[100.0], [1000.0]], **f64)},
                             lambda f: rosenbrock(f, y0, ts, 1e-7, 1e-9, groups=2))
        for k, mu in enumerate((100.0, 1000.0)):
            torch.testing.assert_close(ys[k], rosenbrock(VDP(mu).double(), y0[k], ts, 1e-9, 1e-11), rtol=1e-5, atol=1e-5)
    assert CountingVDP.calls > 0


class WrongShape(VDP):
    "A Jacobian of the wrong shape: (..., 2) instead of (..., 2, 2)."
    def jacobian(self, t, state): return super().jacobian(t, state)[..., 0]


class Raising(VDP):
    "A Jacobian that fails."
    def jacobian(self, t, state): raise RuntimeError("no Jacobian here")


class OwnForward(VDP):
    "A forward of its own: VDP's written-out Jacobian is not its Jacobian, and is not used."
    def forward(self, t, state): return 2*super().forward(t, state)


@pytest.mark.parametrize("cls", [WrongShape, Raising, OwnForward])
def test_a_jacobian_that_does_not_fit_falls_back_to_differentiating_forward(cls):
    y0, ts = torch.tensor([[2.0, 0.0]], **f64), torch.linspace(0, 100, 5, **f64)
    got, want = SolveStats(), SolveStats()
    with torch.no_grad():
        ys = rosenbrock(cls(1000.0).double(), y0, ts, 1e-6, 1e-8, stats=got)
        ref = rosenbrock(Plain(cls(1000.0).double()), y0, ts, 1e-6, 1e-8, stats=want)
    assert torch.equal(ys, ref) and got.nfe == want.nfe


# ---------------------------------------------------------------- failures: a SolverError that says what happened, never NaN
def test_a_singular_matrix_rejects_the_step_and_the_solve_goes_on():
    "A Jacobian that makes the first trial matrix I/(h gamma) - J exactly singular: that step is rejected, a shorter one taken."
    h = 0.01
    class Singular(torch.nn.Module):
        autonomous = True
        calls = 0
        def forward(self, t, y): return -y
        def jacobian(self, t, y):  # the first: 1/(h gamma), so that I/(h gamma) - J = 0; the others: the true -1
            self.calls += 1
            return torch.full((*y.shape, 1), 1/(h*RODAS5P.gamma) if self.calls == 1 else -1.0, **f64)
    ts = torch.linspace(0, 2, 5, **f64)
    st = SolveStats()
    ys = rosenbrock(Singular(), torch.ones(1, 1, **f64), ts, 1e-6, 1e-8, first_step=h, stats=st)
    assert st.rejected >= 1 and torch.isfinite(ys).all()
    torch.testing.assert_close(ys[0, :, 0], torch.exp(-ts), rtol=1e-4, atol=1e-6)


def test_a_blow_up_is_a_solver_error():
    "dy/dt = y^2 from 1: infinite at t = 1. (Both methods share the loop; each takes thousands of steps to get there, so one here.)"
    with pytest.raises(SolverError, match="rodas5p stopped at t=1: the step size underflowed.*blows up") as e:
        rosenbrock(lambda t, y: y**2, torch.ones(1, 1, **f64), torch.linspace(0, 2, 5, **f64))
    assert e.value.kind == "underflow"


def test_a_nan_jacobian_or_right_hand_side_is_a_solver_error():
    class NaNJacobian(torch.nn.Module):
        autonomous = True
        def forward(self, t, y): return -y
        def jacobian(self, t, y): return torch.full((*y.shape, 1), math.nan, **f64)
    ts = torch.linspace(0, 2, 5, **f64)
    ys = rosenbrock(NaNJacobian(), torch.ones(1, 1, **f64), ts)  # a model's own Jacobian that fails: f is differentiated instead
    torch.testing.assert_close(ys[0, :, 0], torch.exp(-ts), rtol=1e-4, atol=1e-8)
    with pytest.raises(SolverError, match="rodas5p stopped at t=0: the step size underflowed"):
        rosenbrock(lambda t, y: y*math.nan, torch.ones(1, 1, **f64), ts)


def test_an_infinite_jacobian_is_no_silent_constant_solution():
    class InfJacobian(torch.nn.Module):
        autonomous = True
        def forward(self, t, y): return -y
        def jacobian(self, t, y): return torch.full((*y.shape, 1), math.inf, **f64)
    ts = torch.linspace(0, 2, 5, **f64)
    try: ys = rosenbrock(InfJacobian(), torch.ones(1, 1, **f64), ts)
    except SolverError: return  # refused: fine
    torch.testing.assert_close(ys[0, :, 0], torch.exp(-ts), rtol=1e-3, atol=1e-6)  # or solved some other way


def test_budgets_give_solver_errors():
    m, y0, ts = VDP(1000.0).double(), torch.tensor([[2.0, 0.0]], **f64), torch.linspace(0, 3000, 3, **f64)
    with pytest.raises(SolverError, match="rodas5p stopped at t=.*: it used its budget of 10 steps before t=1500") as e:
        rosenbrock(m, y0, ts, max_steps=10)
    assert e.value.kind == "steps"
    with pytest.raises(SolverError, match="rodas4 stopped at t=0: it ran out of time before t=1500") as e:
        rosenbrock(m, y0, ts, method="rodas4", deadline=time.perf_counter() - 1)
    assert e.value.kind == "time"
    with pytest.raises(SolverError, match=r"rodas5p stopped at t=0: the graph that autograd keeps for its gradient would pass "
                                          r"max_memory=100 kB.*torch.no_grad\(\)") as e:
        rosenbrock(m, y0, ts, max_memory=1e5)  # mu requires grad: the solve records a graph
    assert e.value.kind == "memory"
    with torch.no_grad(): assert torch.isfinite(rosenbrock(m, y0, torch.linspace(0, 10, 3, **f64), max_memory=1e5)).all()


def test_simulate_passes_the_budget_on_to_the_implicit_method():
    with pytest.raises(SolverError, match="simulate of VDP: rodas5p stopped at .*budget of 50 steps"):
        simulate(VDP(1000.0).double(), torch.tensor([[2.0, 0.0]], **f64), torch.linspace(0, 3000, 5, **f64), method="rodas5p",
                 max_steps=50)


# ---------------------------------------------------------------- groups
@functools.cache
def moving_vdp():
    "VDP(5) from (2, 0) over t in [0, 10]: (model, ts, the solution at rtol 1e-10)."
    m, ts = VDP(5.0).double(), torch.linspace(0, 10, 21, **f64)
    with torch.no_grad(): return m, ts, rosenbrock(m, torch.tensor([[2.0, 0.0]], **f64), ts, 1e-10, 1e-12)[0]


@pytest.mark.parametrize("method", METHODS)
def test_each_group_has_its_own_error_control(method):
    "One moving VDP trajectory beside 15 at rest: as groups it is solved exactly as alone; as one batch its error is diluted."
    m, ts, exact = moving_vdp()
    y0 = torch.zeros(16, 1, 2, **f64)
    y0[0, 0, 0] = 2.0
    with torch.no_grad():
        alone = rosenbrock(m, y0[:1], ts, 1e-5, 1e-7, method=method)[0]
        grouped = rosenbrock(m, y0, ts, 1e-5, 1e-7, method=method, groups=16)
        batch = rosenbrock(m, y0, ts, 1e-5, 1e-7, method=method)
    assert torch.equal(grouped[0], alone)
    assert (grouped[0] - exact).abs().max() < (batch[0] - exact).abs().max()
    assert torch.equal(grouped[1:], y0[1:].unsqueeze(-2).expand_as(grouped[1:]))  # at rest


@pytest.mark.parametrize("method,bound", [("rodas5p", None), ("rodas5p", 100.0), ("rodas4", 100.0)])
def test_a_failing_group_is_dropped_as_dopri5_drops_it(method, bound):
    "dy/dt = y^2 from 0.1, 2 and 0.5: the second blows up at t = 0.5 and is dropped (NaN), the others are solved to t = 1."
    f, ts = lambda t, y: y**2, torch.linspace(0, 1, 5, **f64)
    y0 = torch.tensor([[[0.1]], [[2.0]], [[0.5]]], **f64)
    st, ref = SolveStats(), SolveStats()
    ys = rosenbrock(f, y0, ts, method=method, groups=3, bound=bound, stats=st)
    dopri5(f, y0, ts, groups=3, bound=bound, stats=ref)
    assert st.alive == ref.alive == [True, False, True]
    assert ("left its bound" if bound else "underflowed") in st.failure and st.failure.startswith(f"{method} stopped at t=0.")
    assert torch.isnan(ys[1]).all()
    exact = y0[[0, 2]]/(1 - y0[[0, 2]]*ts[:, None])
    torch.testing.assert_close(ys[[0, 2], 0], exact, rtol=1e-4, atol=1e-8)
    with pytest.raises(SolverError, match=f"{method} stopped at t=.*left its bound in every group"):
        rosenbrock(f, y0[1:2], ts, method=method, groups=1, bound=100.0)


# ---------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_rosenbrock_on_cuda_matches_the_cpu():
    ts, y0 = torch.linspace(0, 100, 6, **f64), torch.tensor([[2.0, 0.0], [1.0, 0.5], [-1.5, 0.2], [0.5, -0.6]], **f64)
    with torch.no_grad():
        for method in METHODS:
            cpu = rosenbrock(VDP(1000.0).double(), y0, ts, 1e-6, 1e-8, method=method)
            gpu = rosenbrock(VDP(1000.0).double().cuda(), y0.cuda(), ts.cuda(), 1e-6, 1e-8, method=method)
            assert gpu.device.type == "cuda"
            torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-6, atol=1e-8)
        rob = rosenbrock(robertson_model().cuda(), torch.tensor([[1.0, 0.0, 0.0]], **f64).cuda(), torch.logspace(-5, 5, 6, **f64).cuda())
        assert torch.isfinite(rob).all() and abs(rob.sum(-1) - 1).max() < 1e-6  # the species are conserved
        st = SolveStats()
        auto = integrate(VDP(1000.0).double().cuda(), y0.cuda(), ts.cuda(), "auto", stats=st)
        assert st.switched == [True] and torch.isfinite(auto).all()


# ---------------------------------------------------------------- fit and estimate with the default method
@pytest.fixture(scope="module")
def stiff_vdp_data():
    "Noise-free VDP(1000) from three initial states over t in [0, 1], by rodas5p at rtol 1e-10."
    ts = torch.linspace(0, 1, 21, **f64)
    y0 = torch.tensor([[2.0, 0.0], [1.5, 0.5], [-2.0, 0.3]], **f64)
    with torch.no_grad():
        ys = rosenbrock(VDP(1000.0).double(), y0, ts, 1e-10, 1e-12)
    return ts, ys


@pytest.mark.parametrize("start", [500.0, 1300.0])
def test_fit_of_stiff_van_der_pol_reaches_mu_within_a_thousandth(stiff_vdp_data, start):
    ts, ys = stiff_vdp_data
    r = fit(VDP(start), SimODEData(ts, ys))
    assert r.success and abs(r.params["mu"] - 1000.0) < 1.0, r.params
    assert "rodas5p solved it" in r.message


def test_estimate_of_a_stiff_model_has_finite_standard_errors(stiff_vdp_data):
    ts, ys = stiff_vdp_data
    noisy = ys + 1e-3*torch.randn(ys.shape, generator=torch.Generator().manual_seed(0), **f64)
    e = estimate(VDP(900.0), SimODEData(ts, noisy))
    assert e.success and 0 < e.stderr["mu"] < 0.5*e.params["mu"]
    assert abs(e.params["mu"] - 1000.0) < 3*e.stderr["mu"]
