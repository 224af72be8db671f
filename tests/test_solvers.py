import math

import pytest
import torch
from torchdiffeq import odeint

from paramfittorchdemo import Lorenz, LotkaVolterra, NeuralDiffEq, VDP, simulate
from paramfittorchdemo.solvers import (ParamSpec, SolveStats, SolverError, broadcasts, dopri5, integrate, jacobian_mode, rhs_traits, rk4,
                                       solve_with_jacobian)

f64 = dict(dtype=torch.float64)


@pytest.mark.parametrize("ts", [torch.linspace(0, 10, 10), torch.arange(0.0, 10.0, 0.1), torch.arange(0, 10.0, 0.05)])
@pytest.mark.parametrize("step", [0.1, 0.05, 0.3, None])
def test_rk4_matches_torchdiffeq(ts, step):
    if step is None and len(ts) == 10: pytest.skip("steps of 1.1 blow Lotka-Volterra up to 1e37: nothing left to compare")
    m = LotkaVolterra(1.6, 1.1, 2.7, 1.2)
    y0 = torch.tensor([[2.5, 2.5], [2.0, 3.0]])
    opts = {} if step is None else dict(options=dict(step_size=step))
    ref = odeint(m, y0, ts, method="rk4", **opts).movedim(0, -2)
    torch.testing.assert_close(rk4(m, y0, ts, step), ref, rtol=1e-6, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("model,y0", [(VDP(0.3), [0.1, -0.2]), (LotkaVolterra(), [2.5, 2.5]), (Lorenz(), [1.0, 0.0, 0.0])])
def test_dopri5_matches_torchdiffeq_at_tight_tolerance(model, y0):
    m = model.double()
    ts = torch.linspace(0, 3, 37, **f64)
    y0 = torch.tensor([y0], **f64)
    ours = dopri5(m, y0, ts, rtol=1e-10, atol=1e-12)
    ref = simulate(m, y0, ts, rtol=1e-11, atol=1e-13).detach()
    torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("rtol", [1e-4, 1e-6, 1e-8])
def test_dopri5_dense_output_error_follows_tolerance(rtol):
    "Harmonic oscillator with 1001 outputs: the interpolated states are as accurate as the steps."
    ts = torch.linspace(0, 10, 1001, **f64)
    osc = lambda t, y: torch.stack([y[..., 1], -y[..., 0]], -1)
    st = SolveStats()
    ys = dopri5(osc, torch.tensor([[1.0, 0.0]], **f64), ts, rtol=rtol, atol=rtol*1e-2, stats=st)
    exact = torch.stack([torch.cos(ts), -torch.sin(ts)], -1)
    assert (ys[0] - exact).abs().max().item() < 30*rtol
    assert st.steps < 200  # far fewer steps than output times


def test_dopri5_time_dependent_rhs():
    "Models without `autonomous` get the true stage times."
    ts = torch.linspace(0, 2, 11, **f64)
    ys = dopri5(lambda t, y: torch.cos(t)*torch.ones_like(y), torch.zeros(1, 1, **f64), ts, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ys[0, :, 0], torch.sin(ts), rtol=1e-7, atol=1e-9)


def test_rk4_time_dependent_rhs():
    ts = torch.linspace(0, 2, 11, **f64)
    ys = rk4(lambda t, y: 2*t*torch.ones_like(y), torch.zeros(1, 1, **f64), ts, 0.01)
    torch.testing.assert_close(ys[0, :, 0], ts**2, rtol=1e-9, atol=1e-9)


def test_dopri5_is_differentiable():
    k = torch.tensor(0.7, **f64, requires_grad=True)
    ts = torch.tensor([0.0, 2.0], **f64)
    y = dopri5(lambda t, y: -k*y, torch.ones(1, 1, **f64), ts, rtol=1e-10, atol=1e-12)[0, -1, 0]
    y.backward()
    assert math.isclose(k.grad.item(), -2.0*math.exp(-1.4), rel_tol=1e-6)


def test_dopri5_groups_drop_only_the_failing_group():
    y0 = torch.tensor([[[0.1]], [[2.0]], [[0.5]]], **f64)
    st = SolveStats()
    ys = dopri5(lambda t, y: y**2, y0, torch.linspace(0, 1, 5, **f64), groups=3, stats=st)
    assert st.alive == [True, False, True]
    assert ys[1].isnan().all() and torch.isfinite(ys[[0, 2]]).all()
    with pytest.raises(SolverError, match="every group"):
        dopri5(lambda t, y: y**2, y0[1:2]*2, torch.linspace(0, 1, 5, **f64), groups=1)
    with pytest.raises(SolverError):
        dopri5(lambda t, y: y**2, y0[1], torch.linspace(0, 1, 5, **f64))


def test_dopri5_max_steps():
    with pytest.raises(SolverError, match="budget of 10 steps"):
        dopri5(VDP(0.3).double(), torch.ones(1, 2, **f64), torch.linspace(0, 100, 3, **f64), max_steps=10)


def test_integrate_falls_back_to_torchdiffeq():
    st = SolveStats()
    m = LotkaVolterra().double()
    ys = integrate(m, torch.ones(2, 2, **f64), torch.linspace(0, 1, 5, **f64), method="dopri8", stats=st)
    assert ys.shape == (2, 5, 2) and st.solves == 1


def test_param_spec_round_trip():
    m = Lorenz(1.0, 2.0, 3.0)
    spec = ParamSpec.of(m)
    theta = spec.vector(m)
    assert theta.tolist() == [1.0, 2.0, 3.0] and spec.size == 3
    spec.load(m, torch.tensor([4.0, 5.0, 6.0], **f64))
    assert m.model_params.dtype == torch.float32 and m.model_params.tolist() == [4.0, 5.0, 6.0]


@pytest.mark.parametrize("model,bc", [(VDP(0.3), True), (LotkaVolterra(), True), (Lorenz(), True), (NeuralDiffEq(2), False)])
def test_broadcast_detection(model, bc):
    m = model.double()
    spec = ParamSpec.of(m)
    assert broadcasts(m, spec, spec.vector(m), m.dim) is bc


class NonAnalytic(torch.nn.Module):
    "dy/dt = -k |y|: fine for autograd, wrong under the complex step."
    dim = 1
    def __init__(self):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(0.5))
    def forward(self, t, y): return -self.k*y.abs()


@pytest.mark.parametrize("cls", [VDP, LotkaVolterra, Lorenz])
def test_known_traits_of_built_in_models_are_what_the_checks_find(cls):
    m = (cls(0.3) if cls is VDP else cls()).double()
    spec = ParamSpec.of(m)
    theta = spec.vector(m)
    bc = broadcasts(m, spec, theta, m.dim)
    assert rhs_traits(m, spec, theta, m.dim) == (bc, jacobian_mode(m, spec, theta, m.dim, bc)) == (True, "complex")
    class Abs(cls):  # a subclass with its own right-hand side is checked, not trusted
        def forward(self, t, y): return super().forward(t, y).abs()
    a = (Abs(0.3) if cls is VDP else Abs()).double()
    assert rhs_traits(a, spec, theta, m.dim)[1] == "forward"  # abs: no complex step, exact in forward mode


def test_dopri5_first_step_only_changes_the_start():
    m, ts = LotkaVolterra().double(), torch.arange(0.0, 10.0, 0.1, **f64)
    y0 = torch.tensor([[2.5, 2.5], [1.0, 3.0]], **f64)
    st = SolveStats()
    ref = dopri5(m, y0, ts, stats=st)
    assert st.first_step > 0
    for h in (st.first_step, 1e-4, 5.0):  # the recorded step, a tiny one and one far too large (rejected, then shrunk)
        st2 = SolveStats()
        ys = dopri5(m, y0, ts, first_step=h, stats=st2)
        assert torch.allclose(ys, ref, rtol=1e-4, atol=1e-5)
    st3 = SolveStats(); dopri5(m, y0, ts, first_step=st.first_step, stats=st3)
    assert st3.nfe < st.nfe  # the starting-step estimate is skipped


def test_dopri5_bound_without_groups_raises():
    with pytest.raises(SolverError, match="bound"):
        dopri5(lambda t, y: y**2, torch.ones(1, 1, **f64), torch.linspace(0, 0.99, 5, **f64), bound=10.0)


def test_jacobian_mode_detects_non_analytic_models():
    m = NonAnalytic().double()
    spec = ParamSpec.of(m)
    assert jacobian_mode(m, spec, spec.vector(m), 1, broadcasts(m, spec, spec.vector(m), 1)) == "forward"
    lv = LotkaVolterra().double()
    assert jacobian_mode(lv, ParamSpec.of(lv), ParamSpec.of(lv).vector(lv), 2, True) == "complex"


@pytest.mark.parametrize("mode", ["complex", "central"])
@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_jacobian_matches_autograd(mode, method):
    m = VDP(0.4).double()
    spec = ParamSpec.of(m)
    ts = torch.linspace(0, 4, 9, **f64)
    y0 = torch.tensor([[0.5, 0.1], [-0.3, 0.2]], **f64)
    kw = dict(step_size=0.05) if method == "rk4" else dict(rtol=1e-10, atol=1e-12)
    theta = spec.vector(m)[None]
    pred, jac, alive = solve_with_jacobian(m, spec, theta, y0, ts, method, mode=mode, **kw)
    mu = m.mu.detach().clone().requires_grad_(True)  # float32's 0.4, as the model holds it
    f = lambda t, y: torch.stack([mu*(y[..., 0] - y[..., 0]**3/3 - y[..., 1]), y[..., 0]/mu], -1)
    ref = integrate(f, y0, ts, method, kw.get("step_size"), kw.get("rtol", 1e-6), kw.get("atol", 1e-8))
    (g,) = torch.autograd.grad(ref.sum(), mu)
    torch.testing.assert_close(pred[0], ref.detach(), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(jac[0, 0].sum(), g, rtol=1e-5 if mode == "central" else 1e-9, atol=1e-8)
    assert alive.tolist() == [True]


def test_population_jacobian_rows_are_independent():
    lv = LotkaVolterra().double()
    spec = ParamSpec.of(lv)
    ts = torch.linspace(0, 2, 5, **f64)
    y0 = torch.tensor([[2.5, 2.5]], **f64)
    thetas = torch.tensor([[1.5, 1.0, 3.0, 1.0], [1.2, 0.8, 2.5, 1.1]], **f64)
    pred, jac, _ = solve_with_jacobian(lv, spec, thetas, y0, ts, rtol=1e-10, atol=1e-12)
    for k in range(2):
        p1, j1, _ = solve_with_jacobian(lv, spec, thetas[k:k + 1], y0, ts, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(pred[k], p1[0], rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(jac[k], j1[0], rtol=1e-6, atol=1e-8)


def test_population_with_a_diverging_member():
    "One parameter vector that blows up is reported dead; the others are unaffected."
    lv = LotkaVolterra().double()
    spec = ParamSpec.of(lv)
    ts = torch.linspace(0, 10, 5, **f64)
    thetas = torch.tensor([[1.5, 1.0, 3.0, 1.0], [50.0, -5.0, 3.0, 1.0]], **f64)
    pred, jac, alive = solve_with_jacobian(lv, spec, thetas, torch.tensor([[2.5, 2.5]], **f64), ts)
    assert alive.tolist() == [True, False] and torch.isfinite(pred[0]).all()


def test_neural_model_population_via_vmap():
    m = NeuralDiffEq(2).double()
    spec = ParamSpec.of(m)
    theta = spec.vector(m)
    thetas = torch.stack([theta, theta + 0.01])
    pred, _, alive = solve_with_jacobian(m, spec, thetas, torch.ones(3, 2, **f64), torch.linspace(0, 1, 4, **f64),
                                         broadcasts=False, need_jac=False)
    ref = simulate(m, torch.ones(3, 2, **f64), torch.linspace(0, 1, 4, **f64), rtol=1e-8, atol=1e-10).detach()
    torch.testing.assert_close(pred[0], ref, rtol=1e-4, atol=1e-6)
    assert alive.all()


def test_rk4_grid_cache_never_serves_a_stale_grid():
    "The plan cache is keyed on the tensor itself: new grids (even at a recycled address) and in-place edits are replanned."
    m = LotkaVolterra().double()
    y0 = torch.ones(1, 2, **f64)
    for end in (1.0, 2.0, 3.0, 1.0):
        ts = torch.linspace(0, end, 5, **f64)
        ref = odeint(m, y0, ts, method="rk4", options=dict(step_size=0.05)).movedim(0, -2)
        torch.testing.assert_close(rk4(m, y0, ts, 0.05), ref)
        del ts
    ts = torch.linspace(0, 1, 5, **f64)
    rk4(m, y0, ts, 0.05)
    ts.mul_(2)  # edited in place
    torch.testing.assert_close(rk4(m, y0, ts, 0.05), odeint(m, y0, ts, method="rk4", options=dict(step_size=0.05)).movedim(0, -2))


def _decay_groups(rates):
    "dy/dt = -rate*y for each group: a fast rate needs many more steps than a slow one."
    class Decay(torch.nn.Module):
        autonomous = True
        def __init__(self): super().__init__(); self.k = torch.tensor(rates, dtype=torch.float64)[:, None]
        def forward(self, t, y): return -self.k*y
    return Decay()


def test_grouped_dopri5_keeps_slow_separate_problems():
    from paramfittorchdemo.solvers import SolveStats, integrate
    rates = [1.0]*7 + [300.0]  # one group far slower than the 7 others
    y0, ts = torch.ones(8, 1, dtype=torch.float64), torch.linspace(0, 5, 6, dtype=torch.float64)
    kept, dropped = SolveStats(), SolveStats()
    integrate(_decay_groups(rates), y0, ts, groups=8, stats=dropped)  # starts of one problem: the straggler is dropped
    ys = integrate(_decay_groups(rates), y0, ts, groups=8, stats=kept, drop_slow=False)  # separate problems: it is kept
    assert dropped.alive[-1] is False and all(kept.alive)
    torch.testing.assert_close(ys[-1, -1, 0], torch.exp(torch.tensor(-1500.0, dtype=torch.float64)), atol=1e-8, rtol=0)
    assert kept.group_steps[-1] > 5*kept.group_steps[0]


def test_grouped_dopri5_budget_per_group():
    from paramfittorchdemo.solvers import SolveStats, integrate
    y0, ts = torch.ones(3, 1, dtype=torch.float64), torch.linspace(0, 5, 6, dtype=torch.float64)
    stats = SolveStats()
    budget = torch.tensor([1000, 1000, 5])  # the third group may take 5 steps only
    ys = integrate(_decay_groups([1.0, 2.0, 3.0]), y0, ts, groups=3, stats=stats, max_steps=budget, drop_slow=False)
    assert stats.alive == [True, True, False] and "budgets" in stats.failure
    assert torch.isnan(ys[2]).all() and torch.isfinite(ys[:2]).all()


# MLPAdjoint, rk4's written-out adjoint through a plain perceptron: the sweep over activations, dtypes and grids
# (nbs/02_solvers.ipynb shows one case)

_ACTIVATIONS = {"tanh-relu": (torch.nn.Tanh, torch.nn.ReLU), "sigmoid-silu": (torch.nn.Sigmoid, torch.nn.SiLU),
                "leaky-0.2-1.5": (lambda: torch.nn.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(1.5))}


@pytest.mark.parametrize("acts", list(_ACTIVATIONS.values()), ids=list(_ACTIVATIONS))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)], ids=["float64", "float32"])
@pytest.mark.parametrize("step_size", [0.1, None])
def test_mlp_adjoint_matches_autograd(acts, dtype, tol, step_size):
    "Every activation the adjoint knows, layers with and without biases: the loss and every gradient are autograd's through rk4."
    from paramfittorchdemo.solvers import MLPAdjoint, mlp_layers
    nn = torch.nn
    torch.manual_seed(0)
    m = NeuralDiffEq(2)
    m.ann = nn.Sequential(nn.Linear(2, 6), acts[0](), nn.Linear(6, 5, bias=False), acts[1](), nn.Linear(5, 4), nn.Linear(4, 2)).to(dtype)
    assert mlp_layers(m) is m.ann
    y0, ts, S = torch.randn(3, 2, dtype=dtype), torch.linspace(0, 4, 9, dtype=dtype), torch.randn(3, 9, 2, dtype=dtype)
    loss = MLPAdjoint(m.ann).loss_and_grad(y0, ts, S, step_size)
    got = [p.grad.clone() for p in m.parameters()]
    for p in m.parameters(): p.grad = None
    ref = torch.nn.functional.mse_loss(rk4(m, y0, ts, step_size), S)
    ref.backward()
    assert abs(loss.item() - ref.item()) < tol*max(1.0, ref.item())
    for a, p in zip(got, m.parameters()):
        assert (a - p.grad).abs().max().item() < tol*max(1.0, p.grad.abs().max().item())


def test_mlp_layers_only_for_a_plain_perceptron():
    "Only a plain perceptron gets the adjoint: not an unknown layer, an activation first or last, a hook, or a forward of its own."
    from paramfittorchdemo.solvers import mlp_layers
    nn = torch.nn
    assert mlp_layers(LotkaVolterra()) is None
    for seq in (nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.1), nn.Linear(4, 2)), nn.Sequential(nn.Tanh(), nn.Linear(2, 2)),
                nn.Sequential(nn.Linear(2, 4), nn.Tanh())):
        m = NeuralDiffEq(2)
        m.ann = seq
        assert mlp_layers(m) is None, seq
    m = NeuralDiffEq(2)
    hook = m.ann[0].register_forward_hook(lambda *a: None)
    assert mlp_layers(m) is None
    hook.remove()
    assert mlp_layers(m) is m.ann

    class Scaled(NeuralDiffEq):
        def forward(self, t, y): return 2*self.ann(y)
    assert mlp_layers(Scaled(2)) is None


def test_mlp_adjoint_blow_up_and_budgets():
    from paramfittorchdemo.solvers import MLPAdjoint
    m = NeuralDiffEq(2)
    with torch.no_grad(): m.ann[-1].weight.mul_(1e30)
    adj = MLPAdjoint(m.ann)
    loss = adj.loss_and_grad(torch.ones(2, 2), torch.linspace(0, 10, 5), torch.zeros(2, 5, 2), 0.1)
    assert not torch.isfinite(loss)  # a blow-up gives a non-finite loss, not an exception
    # the post's problem fits the adjoint's memory; 10,000 rk4 steps for 64 trajectories do not (training then uses autograd)
    assert adj.fits(torch.linspace(0, 30, 100), 0.1, 5) and not adj.fits(torch.linspace(0, 100, 100), 0.01, 64)
    with pytest.raises(SolverError, match="more than max_steps=50"):
        adj.loss_and_grad(torch.ones(2, 2), torch.linspace(0, 100, 5), torch.zeros(2, 5, 2), 0.1, max_steps=50)
