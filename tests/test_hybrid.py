"""FunctionODE, HybridODE (universal differential equations) and ODEBlock (ODE layers)."""
import math

import pytest
import torch
from torch import nn

from paramfittorchdemo import (FunctionODE, HybridODE, Lorenz, LotkaVolterra, ODEBlock, SimODEData, VDP, create_sim_dataset,
                               fit, param_dict, simulate)
from paramfittorchdemo.solvers import SolverError, integrate

T0 = torch.tensor(0.0)


def lotka_volterra(t, y, alpha, beta, delta, gamma):
    x, p = y.unbind(-1)
    return torch.stack([alpha*x - beta*x*p, -delta*p + gamma*x*p], dim=-1)


def linear_terms(t, y, alpha, delta):
    "Only the linear part of Lotka-Volterra: prey growth and predator death."
    x, p = y.unbind(-1)
    return torch.stack([alpha*x, -delta*p], dim=-1)


def lv_fn(**kw):
    return FunctionODE(lotka_volterra, dim=2, **{**dict(alpha=1.5, beta=1.0, delta=3.0, gamma=1.0), **kw})


def linear_known(**kw):
    return FunctionODE(linear_terms, dim=2, alpha=1.3, delta=1.8, **kw)


def perturb(module, std=0.5):
    "Give every parameter of `module` random values, so that no zero-initialised layer hides a dependence."
    with torch.no_grad():
        for p in module.parameters(): p.normal_(0.0, std)


class NoDim(nn.Module):
    "A mechanistic part that does not declare its dimension."
    def forward(self, t, y): return -y


class Poly(nn.Module):
    "A custom learned term: a quadratic interaction c * (x*y, x*y)."
    def __init__(self, dim=2):
        super().__init__()
        self.dim = dim
        self.c = nn.Parameter(torch.tensor([-0.5, 0.5]))
    def forward(self, t, y): return self.c*(y[..., :1]*y[..., 1:2])


# ----------------------------------------------------------------------------- FunctionODE

@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_function_ode_matches_lotka_volterra(batch):
    y = torch.rand(*batch, 2) + 0.5
    torch.testing.assert_close(lv_fn()(T0, y), LotkaVolterra()(T0, y))


def test_function_ode_simulates_like_the_class():
    y0, ts = torch.rand(3, 2) + 1.0, torch.linspace(0, 2, 21)
    torch.testing.assert_close(simulate(lv_fn(), y0, ts), simulate(LotkaVolterra(), y0, ts), rtol=1e-5, atol=1e-5)


def test_function_ode_parameters_values_names_and_dtypes():
    m = lv_fn(alpha=1.3, gamma=torch.tensor(0.8))
    assert m.param_names == ("alpha", "beta", "delta", "gamma")
    assert [n for n, _ in m.named_parameters()] == list(m.param_names)
    for name, value in zip(m.param_names, (1.3, 1.0, 3.0, 0.8)):
        p = getattr(m, name)
        assert isinstance(p, nn.Parameter) and p.shape == () and p.dtype == torch.get_default_dtype()
        assert p.item() == pytest.approx(value)
    assert (m.dim, m.autonomous) == (2, True)
    assert param_dict(m) == pytest.approx(dict(alpha=1.3, beta=1.0, delta=3.0, gamma=0.8))
    assert repr(m) == "FunctionODE(alpha=1.3, beta=1, delta=3, gamma=0.8)"


def test_function_ode_follows_the_default_dtype():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try: assert lv_fn().alpha.dtype == torch.float64
    finally: torch.set_default_dtype(old)


@pytest.mark.parametrize("trainable", [True, False])
def test_function_ode_double(trainable):
    m = lv_fn(trainable=trainable).double()
    assert all(getattr(m, n).dtype == torch.float64 for n in m.param_names)
    y = torch.rand(4, 2, dtype=torch.float64) + 0.5
    out = m(T0.double(), y)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, LotkaVolterra().double()(T0, y))


def test_function_ode_not_trainable_has_buffers_only():
    m = lv_fn(trainable=False)
    assert list(m.parameters()) == []
    assert [n for n, _ in m.named_buffers()] == ["alpha", "beta", "delta", "gamma"]
    assert param_dict(m) == {}
    assert "alpha" in m.state_dict()
    torch.testing.assert_close(m(T0, torch.ones(2)), lv_fn()(T0, torch.ones(2)).detach())


def test_function_ode_without_parameters():
    m = FunctionODE(lambda t, y: -y, dim=3)
    assert m.param_names == () and list(m.parameters()) == [] and repr(m) == "FunctionODE()"
    torch.testing.assert_close(m(T0, torch.ones(2, 3)), -torch.ones(2, 3))


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_function_ode_non_autonomous_gets_the_time(method):
    "dy/dt = k cos t has y(t) = y0 + k sin t; with autonomous=True the solvers would be free to pass t = 0."
    m = FunctionODE(lambda t, y, k: k*torch.cos(t)*torch.ones_like(y), dim=1, autonomous=False, k=2.0)
    assert m.autonomous is False
    ts = torch.linspace(0, 3, 31, dtype=torch.float64)
    ys = integrate(m.double(), torch.zeros(1, 1, dtype=torch.float64), ts, method=method, step_size=0.01)
    torch.testing.assert_close(ys[0, :, 0], 2*torch.sin(ts), atol=1e-5, rtol=0)


def test_function_ode_is_fitted_by_fit():
    truth = LotkaVolterra(alpha=1.3, beta=0.9, delta=1.8, gamma=0.8)
    data = create_sim_dataset(truth, torch.linspace(0, 5, 26), num_samples=4, sigma_noise=0.01,
                              initial_conditions_default=torch.tensor([1.0, 1.0]), seed=0)
    m = lv_fn(alpha=1.0, beta=1.0, delta=1.0, gamma=1.0)
    res = fit(m, data)
    assert param_dict(m) == pytest.approx(dict(alpha=1.3, beta=0.9, delta=1.8, gamma=0.8), abs=0.02)
    assert res.loss < 1e-3


@pytest.mark.parametrize("args,kw,exc,match", [
    (("x*y", 2), {}, TypeError, "needs f as a function"),
    ((None, 2), {}, TypeError, "needs f as a function"),
    ((lotka_volterra, 0), {}, ValueError, "dim as a positive integer"),
    ((lotka_volterra, -1), {}, ValueError, "dim as a positive integer"),
    ((lotka_volterra, 2.0), {}, TypeError, "dim as a positive integer"),
    ((lotka_volterra, True), {}, TypeError, "dim as a positive integer"),
    ((lotka_volterra, 2), dict(alpha="fast"), TypeError, "alpha as a real number"),
    ((lotka_volterra, 2), dict(alpha=None), TypeError, "alpha as a real number"),
    ((lotka_volterra, 2), dict(alpha=True), TypeError, "alpha as a real number"),
    ((lotka_volterra, 2), dict(alpha=[1.0, 2.0]), TypeError, "alpha as a real number"),
    ((lotka_volterra, 2), dict(alpha=torch.ones(2)), ValueError, "alpha as a single number"),
    ((lotka_volterra, 2), dict(alpha=float("nan")), ValueError, "finite alpha"),
    ((lotka_volterra, 2), dict(autonomous=1), TypeError, "autonomous as True or False"),
    ((lotka_volterra, 2), dict(trainable="no"), TypeError, "trainable as True or False"),
    ((lotka_volterra, 2), dict(forward=1.0), ValueError, "cannot name a parameter 'forward'"),
    ((lotka_volterra, 2), dict(training=1.0), ValueError, "cannot name a parameter 'training'"),
    ((lotka_volterra, 2), dict(param_names=1.0), ValueError, "cannot name a parameter 'param_names'"),
])
def test_function_ode_errors(args, kw, exc, match):
    with pytest.raises(exc, match=match): FunctionODE(*args, **kw)


# ----------------------------------------------------------------------------- HybridODE: construction

KNOWNS = [LotkaVolterra, lambda: VDP(0.5), Lorenz, linear_known, lambda: linear_known(trainable=False)]


@pytest.mark.parametrize("make", KNOWNS)
@pytest.mark.parametrize("batch", [(), (5,), (3, 4)])
def test_fresh_hybrid_is_exactly_the_known_model(make, batch):
    known = make()
    h = HybridODE(known)
    y = torch.randn(*batch, known.dim)
    for t in (T0, torch.tensor(1.7)):
        assert torch.equal(h(t, y), known(t, y))
        assert torch.equal(h.unknown(t, y), torch.zeros_like(y))


def test_fresh_hybrid_simulates_exactly_like_the_known_model():
    known = linear_known()
    y0, ts = torch.rand(3, 2) + 0.5, torch.linspace(0, 2, 11)
    for method in ("dopri5", "rk4"):
        assert torch.equal(simulate(HybridODE(known), y0, ts, method=method), simulate(known, y0, ts, method=method))


def test_fresh_hybrid_with_time_and_inputs_is_the_known_model():
    known = LotkaVolterra()
    h = HybridODE(known, time_input=True, inputs=lambda t: torch.stack([torch.sin(t), torch.cos(t)]), n_inputs=2)
    y = torch.rand(3, 4, 2)
    assert torch.equal(h(torch.tensor(0.3), y), known(torch.tensor(0.3), y))


def test_built_mlp_architecture():
    h = HybridODE(LotkaVolterra(), hidden=16, depth=3, activation=nn.SiLU, time_input=True,
                  inputs=lambda t: torch.zeros(3), n_inputs=3)
    linears = [m for m in h.term if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(2 + 1 + 3, 16), (16, 16), (16, 16), (16, 2)]
    assert sum(isinstance(m, nn.SiLU) for m in h.term) == 3
    assert torch.equal(linears[-1].weight, torch.zeros(2, 16)) and torch.equal(linears[-1].bias, torch.zeros(2))
    assert linears[0].weight.abs().sum() > 0  # only the last layer starts at zero
    assert h.dim == 2 and h.scale == 1.0


def test_autonomy_flags():
    assert HybridODE(LotkaVolterra()).autonomous is True
    assert HybridODE(linear_known()).autonomous is True
    assert HybridODE(LotkaVolterra(), time_input=True).autonomous is False
    assert HybridODE(LotkaVolterra(), inputs=lambda t: torch.sin(t).reshape(1), n_inputs=1).autonomous is False
    non_autonomous = FunctionODE(lambda t, y: -t*y, dim=2, autonomous=False)
    assert HybridODE(non_autonomous).autonomous is False
    assert HybridODE(NoDim(), dim=2).autonomous is False  # declares nothing: treated as time-dependent
    assert HybridODE(LotkaVolterra(), term=Poly()).autonomous is False  # a custom term must declare its autonomy
    poly = Poly(); poly.autonomous = True
    assert HybridODE(LotkaVolterra(), term=poly).autonomous is True


def test_dim_from_argument_when_known_declares_none():
    h = HybridODE(NoDim(), dim=3)
    assert h.dim == 3 and h.term[0].in_features == 3 and h.term[-1].out_features == 3
    y = torch.randn(4, 3)
    assert torch.equal(h(T0, y), -y)
    assert HybridODE(LotkaVolterra(), dim=2).dim == 2


def test_extra_repr_shows_the_known_part_and_the_term_size():
    h = HybridODE(linear_known(), hidden=8, depth=1)
    n = sum(p.numel() for p in h.term.parameters())
    assert n == (2*8 + 8) + (8*2 + 2)
    first = repr(h).splitlines()[1].strip()
    assert first == f"dim=2, known=FunctionODE(alpha=1.3, delta=1.8), term: {n} parameters"
    r = repr(HybridODE(LotkaVolterra(), time_input=True, inputs=lambda t: t.reshape(1), n_inputs=1, scale=2.5))
    assert "time_input=True" in r and "n_inputs=1" in r and "scale=2.5" in r


def sine(t): return torch.sin(t).reshape(1)


@pytest.mark.parametrize("args,kw,exc,match", [
    ((lotka_volterra,), {}, TypeError, "known as an nn.Module"),
    ((NoDim(),), {}, ValueError, "NoDim declares no `dim`; pass it"),
    ((LotkaVolterra(),), dict(dim=3), ValueError, "got dim=3, but LotkaVolterra has dim=2"),
    ((NoDim(),), dict(dim=0), ValueError, "dim as a positive integer"),
    ((NoDim(),), dict(dim="2"), TypeError, "dim as a positive integer"),
    ((LotkaVolterra(),), dict(inputs=sine), ValueError, "got inputs but n_inputs=0"),
    ((LotkaVolterra(),), dict(n_inputs=2), ValueError, "n_inputs=2 but no inputs"),
    ((LotkaVolterra(),), dict(inputs=sine, n_inputs=-1), ValueError, "n_inputs as an integer >= 0"),
    ((LotkaVolterra(),), dict(inputs=sine, n_inputs=1.0), ValueError, "n_inputs as an integer >= 0"),
    ((LotkaVolterra(),), dict(inputs=sine, n_inputs=2), ValueError, r"shape \(n_inputs,\) = \(2,\), got shape \(1,\)"),
    ((LotkaVolterra(),), dict(inputs=torch.sin, n_inputs=1), ValueError, r"= \(1,\), got shape \(\); .*reshape\(1\)"),
    ((LotkaVolterra(),), dict(inputs=lambda t: 1.0, n_inputs=1), ValueError, "got float"),
    ((LotkaVolterra(),), dict(inputs=[1.0], n_inputs=1), TypeError, "inputs as a function"),
    ((LotkaVolterra(),), dict(inputs=lambda t: t.foo, n_inputs=1), ValueError, "evaluated inputs\\(t\\) at t=0"),
    ((LotkaVolterra(),), dict(depth=0), ValueError, "depth as a positive integer"),
    ((LotkaVolterra(),), dict(depth=-2), ValueError, "depth as a positive integer"),
    ((LotkaVolterra(),), dict(depth=1.5), ValueError, "depth as a positive integer"),
    ((LotkaVolterra(),), dict(depth=True), ValueError, "depth as a positive integer"),
    ((LotkaVolterra(),), dict(hidden=0), ValueError, "hidden as a positive integer"),
    ((LotkaVolterra(),), dict(hidden=None), ValueError, "hidden as a positive integer"),
    ((LotkaVolterra(),), dict(activation=nn.Tanh()), TypeError, "drop the parentheses"),
    ((LotkaVolterra(),), dict(activation=torch.tanh), TypeError, "activation as a class"),
    ((LotkaVolterra(),), dict(activation="tanh"), TypeError, "activation as a class"),
    ((LotkaVolterra(),), dict(scale=0.0), ValueError, "scale > 0"),
    ((LotkaVolterra(),), dict(scale=-1.0), ValueError, "scale > 0"),
    ((LotkaVolterra(),), dict(scale=float("inf")), ValueError, "finite scale"),
    ((LotkaVolterra(),), dict(scale="big"), TypeError, "scale as a real number"),
    ((LotkaVolterra(),), dict(time_input=1), TypeError, "time_input as True or False"),
    ((LotkaVolterra(),), dict(train_known=0), TypeError, "train_known as True or False"),
    ((LotkaVolterra(),), dict(term=lambda t, y: y), TypeError, "term as an nn.Module"),
    ((LotkaVolterra(),), dict(term=Poly(dim=3)), ValueError, "term Poly has dim=3"),
    ((LotkaVolterra(),), dict(term=Poly(), time_input=True), ValueError, "custom term receives"),
    ((LotkaVolterra(),), dict(term=Poly(), inputs=sine, n_inputs=1), ValueError, "custom term receives"),
    ((LotkaVolterra(),), dict(term=Poly(), scale=2.0), ValueError, "custom term receives"),
])
def test_hybrid_errors(args, kw, exc, match):
    with pytest.raises(exc, match=match): HybridODE(*args, **kw)


# ----------------------------------------------------------------------------- HybridODE: behaviour

def test_gradients_reach_the_network_through_a_solve():
    h = HybridODE(linear_known())
    ys = integrate(h, torch.tensor([[1.0, 1.0]]), torch.linspace(0, 1, 11), method="rk4", step_size=0.1)
    (ys - 2.0).square().mean().backward()
    assert h.term[-1].weight.grad.abs().sum() > 0 and h.term[-1].bias.grad.abs().sum() > 0
    assert h.known.alpha.grad is not None and h.known.alpha.grad != 0
    # the hidden layers feed the zero output layer, so their first gradient is zero (but defined)
    assert h.term[0].weight.grad is not None and h.term[0].weight.grad.abs().sum() == 0


def train_steps(h, steps, lr=1e-2, params=None):
    opt = torch.optim.Adam(h.parameters() if params is None else params, lr=lr)
    y0, ts = torch.tensor([[1.0, 1.0], [2.0, 0.5]]), torch.linspace(0, 1, 11)
    target = simulate(LotkaVolterra(1.3, 0.9, 1.8, 0.8), y0, ts, method="rk4").detach()
    for _ in range(steps):
        opt.zero_grad()
        (integrate(h, y0, ts, method="rk4") - target).square().mean().backward()
        opt.step()


def test_unknown_is_zero_at_start_and_nonzero_after_one_step():
    h = HybridODE(linear_known())
    y = torch.rand(7, 2) + 0.5
    assert torch.equal(h.unknown(T0, y), torch.zeros_like(y))
    train_steps(h, 1)
    u = h.unknown(T0, y)
    assert u.shape == y.shape and u.abs().min() > 0
    train_steps(h, 1)  # now the hidden layers learn too
    assert h.term[0].weight.grad.abs().sum() > 0


def test_train_known_false_keeps_the_known_parameters_fixed():
    known = linear_known()
    h = HybridODE(known, train_known=False)
    assert not any(p.requires_grad for p in known.parameters())
    before = [p.detach().clone() for p in h.term.parameters()]
    train_steps(h, 5, params=[p for p in h.parameters() if p.requires_grad])
    train_steps(h, 5)  # even an optimizer given every parameter leaves them alone
    assert torch.equal(known.alpha, torch.tensor(1.3)) and torch.equal(known.delta, torch.tensor(1.8))
    assert known.alpha.grad is None
    assert any(not torch.equal(b, p) for b, p in zip(before, h.term.parameters()))


def test_train_known_true_trains_both_parts():
    h = HybridODE(linear_known())
    train_steps(h, 5)
    assert h.known.alpha.item() != pytest.approx(1.3, abs=1e-6)
    assert h.unknown(T0, torch.ones(2)).abs().sum() > 0


def test_scale_multiplies_the_network_output():
    a, b = HybridODE(LotkaVolterra()), HybridODE(LotkaVolterra(), scale=3.0)
    b.term.load_state_dict(a.term.state_dict())
    perturb(a.term); b.term.load_state_dict(a.term.state_dict())
    y = torch.rand(4, 2)
    torch.testing.assert_close(b.unknown(T0, y), 3.0*a.unknown(T0, y))


def test_time_input_is_used():
    h = HybridODE(LotkaVolterra(), time_input=True)
    perturb(h.term)
    y = torch.rand(3, 4, 2)
    a, b = h(torch.tensor(0.0), y), h(torch.tensor(1.0), y)
    assert a.shape == y.shape and not torch.allclose(a, b)
    plain = HybridODE(LotkaVolterra())
    perturb(plain.term)
    torch.testing.assert_close(plain(torch.tensor(0.0), y), plain(torch.tensor(1.0), y))


def test_inputs_are_used_and_broadcast():
    h = HybridODE(LotkaVolterra(), inputs=lambda t: torch.sin(t).reshape(1), n_inputs=1)
    perturb(h.term)
    y = torch.rand(3, 4, 2)
    a, b = h(torch.tensor(0.0), y), h(torch.tensor(math.pi/2), y)
    assert a.shape == y.shape and not torch.allclose(a, b)
    torch.testing.assert_close(h(torch.tensor(0.0), y), h(torch.tensor(math.pi), y), atol=1e-6, rtol=1e-6)  # sin 0 = sin pi
    # the features are state, then time, then inputs, each broadcast over the batch
    h2 = HybridODE(LotkaVolterra(), time_input=True, inputs=lambda t: torch.stack([torch.sin(t), 2*torch.cos(t)]), n_inputs=2)
    f = h2._features(torch.tensor(0.5), y)
    assert f.shape == (3, 4, 5)
    torch.testing.assert_close(f[..., :2], y)
    torch.testing.assert_close(f[..., 2:], torch.tensor([0.5, math.sin(0.5), 2*math.cos(0.5)]).expand(3, 4, 3))
    assert h2(torch.tensor(0.5), torch.rand(2)).shape == (2,)  # a single state


def test_non_autonomous_hybrid_gets_the_time_from_dopri5():
    "A time-dependent network must see the true t, which the solvers only provide to non-autonomous models."
    h = HybridODE(FunctionODE(lambda t, y: torch.zeros_like(y), dim=1), time_input=True, depth=1, hidden=1,
                  activation=nn.Identity)
    with torch.no_grad():  # unknown(t, y) = t exactly
        h.term[0].weight.copy_(torch.tensor([[0.0, 1.0]])); h.term[0].bias.zero_()
        h.term[-1].weight.fill_(1.0); h.term[-1].bias.zero_()
    ts = torch.linspace(0, 2, 5)
    ys = simulate(h, torch.zeros(1, 1), ts, method="dopri5")
    torch.testing.assert_close(ys[0, :, 0], ts**2/2, atol=1e-5, rtol=1e-5)


def test_custom_term_is_used():
    poly = Poly()
    h = HybridODE(LotkaVolterra(1.3, 0.9, 1.8, 0.8), term=poly)
    assert h.term is poly and sum(p.numel() for p in h.term.parameters()) == 2
    y = torch.rand(5, 2) + 0.5
    torch.testing.assert_close(h.unknown(T0, y), poly(T0, y))
    torch.testing.assert_close(h(T0, y), LotkaVolterra(1.3, 0.9, 1.8, 0.8)(T0, y) + poly(T0, y))
    assert any(p is poly.c for p in h.parameters())
    assert "term: 2 parameters" in repr(h)


def test_custom_term_learns_the_interaction_coefficients():
    "With a term of the right form, the hybrid recovers -beta and gamma (the known part is frozen)."
    truth = LotkaVolterra(alpha=1.3, beta=0.9, delta=1.8, gamma=0.8)
    ts = torch.linspace(0, 3, 31, dtype=torch.float64)
    data = create_sim_dataset(truth.double(), ts, num_samples=4, sigma_noise=0.0,
                              initial_conditions_default=torch.tensor([1.0, 1.0], dtype=torch.float64), seed=0)
    h = HybridODE(FunctionODE(lotka_volterra, dim=2, alpha=1.3, beta=0.0, delta=1.8, gamma=0.0), term=Poly(), train_known=False)
    fit(h, data, optimizer="lbfgs", method="rk4", step_size=0.05)
    torch.testing.assert_close(h.term.c.detach(), torch.tensor([-0.9, 0.8]), atol=1e-3, rtol=0)


def test_hybrid_double_and_state_dict():
    h = HybridODE(linear_known(), time_input=True, inputs=lambda t: torch.sin(t).reshape(1), n_inputs=1).double()
    assert all(p.dtype == torch.float64 for p in h.parameters())
    out = h(torch.tensor(0.5, dtype=torch.float64), torch.rand(3, 2, dtype=torch.float64))
    assert out.dtype == torch.float64  # u(t) comes back float32 from torch.sin on a float32 probe, and is cast
    keys = set(h.state_dict())
    assert {"known.alpha", "known.delta", "term.0.weight", "term.4.bias"} <= keys


def test_hybrid_runs_on_cpu_without_cuda():
    "Nothing in the hybrid or the layer assumes a GPU; the CUDA path is tested only where one exists."
    h = HybridODE(LotkaVolterra(), time_input=True, inputs=lambda t: torch.sin(t).reshape(1), n_inputs=1)
    block = ODEBlock(h, torch.linspace(0, 1, 5))
    assert block(torch.ones(2, 2)).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_hybrid_and_block_on_cuda():
    h = HybridODE(LotkaVolterra(), time_input=True, inputs=lambda t: torch.sin(t).reshape(1), n_inputs=1)
    block = ODEBlock(h, torch.linspace(0, 1, 5)).cuda()
    assert block.ts.device.type == "cuda"
    out = block(torch.ones(2, 2, device="cuda"))
    assert out.device.type == "cuda" and out.shape == (2, 5, 2)
    torch.testing.assert_close(out.cpu(), block.cpu()(torch.ones(2, 2)), atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- ODEBlock

@pytest.mark.parametrize("batch", [(4,), (2, 3), ()])
def test_ode_block_shapes(batch):
    ts = torch.linspace(0, 1, 11)
    y0 = torch.rand(*batch, 2) + 0.5
    full = ODEBlock(LotkaVolterra(), ts)(y0)
    last = ODEBlock(LotkaVolterra(), ts, last_only=True)(y0)
    assert full.shape == (*batch, 11, 2) and last.shape == (*batch, 2)
    torch.testing.assert_close(last, full[..., -1, :])
    torch.testing.assert_close(full[..., 0, :], y0)


@pytest.mark.parametrize("method,kw", [("rk4", {}), ("rk4", dict(step_size=0.01)), ("dopri5", dict(rtol=1e-10, atol=1e-12)),
                                       ("midpoint", dict(step_size=0.01))])
def test_ode_block_matches_simulate(method, kw):
    ts, y0 = torch.linspace(0, 2, 21, dtype=torch.float64), torch.rand(3, 2, dtype=torch.float64) + 0.5
    m = LotkaVolterra().double()
    got = ODEBlock(m, ts, method=method, **kw)(y0)
    want = simulate(m, y0, ts, method=method, **kw)
    torch.testing.assert_close(got, want, atol=1e-7, rtol=1e-7)  # dopri5: the library's own against torchdiffeq's


def test_ode_block_gradients_reach_the_vector_field():
    m = LotkaVolterra()
    block = ODEBlock(m, torch.linspace(0, 1, 6))
    y0 = (torch.rand(4, 2) + 0.5).requires_grad_(True)
    block(y0).sum().backward()
    assert m.model_params.grad is not None and (m.model_params.grad != 0).all()
    assert y0.grad is not None and y0.grad.abs().sum() > 0
    assert [n for n, _ in block.named_parameters()] == ["func.model_params"]


def test_ode_block_ts_is_a_buffer():
    ts = torch.linspace(0, 1, 6)
    block = ODEBlock(LotkaVolterra(), ts)
    assert [n for n, _ in block.named_buffers()] == ["ts"] and "ts" in block.state_dict()
    assert block.ts is not ts and torch.equal(block.ts, ts)  # a copy: editing ts later does not move the layer
    block = block.to(torch.float64)
    assert block.ts.dtype == torch.float64 and block.func.model_params.dtype == torch.float64
    assert block(torch.ones(2, 2, dtype=torch.float64)).dtype == torch.float64
    assert block.double().ts.dtype == torch.float64


def test_ode_block_in_sequential_and_repr():
    seq = nn.Sequential(nn.Linear(8, 2), ODEBlock(LotkaVolterra(), torch.linspace(0, 1, 6)), nn.Linear(2, 8))
    assert seq(torch.rand(5, 8)).shape == (5, 6, 8)
    r = repr(ODEBlock(VDP(0.5), torch.linspace(0, 2, 21), step_size=0.1, last_only=True))
    assert "ts=[0, 2] (21 points), method='rk4', step_size=0.1, last_only=True" in r


@pytest.mark.parametrize("args,kw,exc,match", [
    ((lambda t, y: y, torch.linspace(0, 1, 5)), {}, TypeError, "func as a torch.nn.Module"),
    ((LotkaVolterra(), torch.linspace(0, 1, 6).reshape(2, 3)), {}, ValueError, "1-D tensor of at least 2 time points"),
    ((LotkaVolterra(), torch.tensor([0.5])), {}, ValueError, "1-D tensor of at least 2 time points"),
    ((LotkaVolterra(), torch.tensor([0.0, 1.0, 0.5])), {}, ValueError, "strictly increasing"),
    ((LotkaVolterra(), torch.tensor([0.0, 1.0, 1.0])), {}, ValueError, "strictly increasing"),
    ((LotkaVolterra(), torch.tensor([1.0, 0.0])), {}, ValueError, "strictly increasing"),
    ((LotkaVolterra(), torch.arange(5)), {}, TypeError, "floating point"),
    ((LotkaVolterra(), [0.0, 1.0]), {}, TypeError, "as a torch.Tensor"),
    ((LotkaVolterra(), torch.tensor([0.0, float("nan")])), {}, ValueError, "NaN or inf"),
    ((LotkaVolterra(), torch.linspace(0, 1, 5)), dict(method="rk5"), ValueError, "unknown solver method"),
    ((LotkaVolterra(), torch.linspace(0, 1, 5)), dict(step_size=-0.1), ValueError, "positive finite"),
    ((LotkaVolterra(), torch.linspace(0, 1, 5)), dict(method="dopri5", rtol=0.0), ValueError, "rtol must be a positive"),
    ((LotkaVolterra(), torch.linspace(0, 1, 5)), dict(last_only=1), TypeError, "last_only as True or False"),
])
def test_ode_block_errors(args, kw, exc, match):
    with pytest.raises(exc, match=match): ODEBlock(*args, **kw)


def test_ode_block_rejects_states_of_the_wrong_size():
    block = ODEBlock(LotkaVolterra(), torch.linspace(0, 1, 5))
    with pytest.raises(ValueError, match=r"y0 of shape \(batch, 2\), got shape \(4, 3\)"): block(torch.rand(4, 3))
    with pytest.raises(ValueError, match="got shape \\(\\)"): block(torch.tensor(1.0))
    with pytest.raises(ValueError, match="got list"): block([1.0, 2.0])


# ----------------------------------------------------------------------------- training

def test_encoder_ode_decoder_learns_latent_dynamics():
    "A damped oscillator in 2 latent dimensions, seen through a random linear map in 8: the loss falls at least 5x."
    def linear_field(t, z, a, b, c, d):
        u, v = z.unbind(-1)
        return torch.stack([a*u + b*v, c*u + d*v], dim=-1)
    ts = torch.linspace(0, 4, 21)
    with torch.no_grad():
        zs = simulate(FunctionODE(linear_field, 2, a=-0.1, b=1.0, c=-1.0, d=-0.1), torch.randn(16, 2), ts, method="rk4")
    obs = zs @ torch.randn(2, 8) + 0.01*torch.randn(16, 21, 8)  # (batch, time, 8)
    latent = FunctionODE(linear_field, 2, a=0.0, b=0.0, c=0.0, d=0.0)
    model = nn.Sequential(nn.Linear(8, 2), ODEBlock(latent, ts), nn.Linear(2, 8))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = (model(obs[:, 0]) - obs).square().mean()
        loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]/5
    assert losses[-1] < 0.05*obs.var().item()


def lv_windows(window=6, dtype=torch.float32):
    "One Lotka-Volterra trajectory (alpha=1.3, beta=0.9, gamma=0.8, delta=1.8) and all its windows of `window` points."
    truth = LotkaVolterra(alpha=1.3, beta=0.9, delta=1.8, gamma=0.8).to(dtype)
    ts = torch.linspace(0, 5, 51, dtype=dtype)
    with torch.no_grad(): ys = simulate(truth, torch.tensor([[1.0, 1.0]], dtype=dtype), ts)[0]  # (time, 2)
    return ts, ys, ys.unfold(0, window, 1).movedim(-1, 1), ts[:window] - ts[0]  # windows: (batch, window, 2)


def relative_rms_of_learned_interaction(h, ys):
    x, p = ys.unbind(-1)
    missing = torch.stack([-0.9*x*p, 0.8*x*p], dim=-1)
    with torch.no_grad(): learned = h.unknown(torch.tensor(0.0, dtype=ys.dtype), ys)
    return ((learned - missing).square().mean()/missing.square().mean()).sqrt().item()


def test_hybrid_learns_the_lotka_volterra_interaction_with_adam():
    ts, ys, segments, tw = lv_windows()
    h = HybridODE(linear_known(), train_known=False)
    opt = torch.optim.Adam([p for p in h.parameters() if p.requires_grad], lr=0.02)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = (integrate(h, segments[:, 0], tw, method="rk4", step_size=0.1) - segments).square().mean()
        loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]/100
    assert relative_rms_of_learned_interaction(h, ys) < 0.2
    # and the trained hybrid reproduces the whole trajectory from its first state
    pred = integrate(h, ys[:1], ts, method="rk4", step_size=0.1)[0].detach()
    assert (pred - ys).square().mean().sqrt() < 0.1*ys.std()


def test_hybrid_learns_the_lotka_volterra_interaction_with_fit():
    ts, ys, segments, tw = lv_windows(dtype=torch.float64)
    data = SimODEData(tw, list(segments))
    h = HybridODE(linear_known(), train_known=False)
    res = fit(h, data, optimizer="adam-lbfgs", method="rk4", step_size=0.1, adam_steps=100, lr=0.02, max_iter=50)
    assert res.jacobian == "autograd"
    assert h.known.alpha.item() == pytest.approx(1.3) and h.known.delta.item() == pytest.approx(1.8)
    assert relative_rms_of_learned_interaction(h, ys.float()) < 0.2


def test_ode_block_refuses_a_solution_that_blows_up():
    "An input far too large overflows the solve: a SolverError that says so, never a silent NaN output (issue 19's properties found it)."
    block = ODEBlock(LotkaVolterra(), torch.linspace(0, 1, 5))
    with pytest.raises(SolverError, match=r"solution of LotkaVolterra is not finite \(first in row 0.*largest state is 1e\+30"):
        block(torch.tensor([[1e30, 1.0], [1.0, 1.0]]))
    assert torch.isfinite(block(torch.ones(2, 2))).all()
