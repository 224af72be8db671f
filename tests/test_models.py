import math

import pytest
import torch
from torchdiffeq._impl.odeint import SOLVERS

from paramfittorchdemo.solvers import IMPLICIT_METHODS
from paramfittorchdemo import (ADAPTIVE_METHODS, FIXED_STEP_METHODS, Lorenz, LotkaVolterra, NeuralDiffEq, VDP,
                               param_dict, simulate, solver_options)


def lv_invariant(ys, m):
    "gamma*x - delta*ln x + beta*y - alpha*ln y, constant along Lotka-Volterra solutions."
    a, b, d, g = m.model_params.detach()
    x, y = ys[..., 0], ys[..., 1]
    return g*x - d*x.log() + b*y - a*y.log()


def test_method_lists_cover_torchdiffeq():
    assert set(FIXED_STEP_METHODS) | set(ADAPTIVE_METHODS) == set(SOLVERS) | {"auto", *IMPLICIT_METHODS}
    assert not set(SOLVERS) & {"auto", *IMPLICIT_METHODS}  # torchdiffeq's own methods, and the library's beside them


@pytest.mark.parametrize("model", [VDP(0.5), LotkaVolterra(), Lorenz(), NeuralDiffEq(3)])
@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_rhs_accepts_any_batch_shape(model, batch):
    dim = model.dim
    y = torch.rand(*batch, dim) + 0.5
    out = model(torch.tensor(0.0), y)
    assert out.shape == y.shape
    # each batch element is independent of the others
    if batch:
        flat = y.reshape(-1, dim)
        assert torch.allclose(out.reshape(-1, dim)[0], model(torch.tensor(0.0), flat[:1])[0])


def test_rhs_values_match_the_equations():
    y = torch.tensor([0.7, -0.2])
    mu = 0.3
    x, v = y
    assert torch.allclose(VDP(mu)(0, y), torch.tensor([mu*(x - x**3/3 - v), x/mu]))
    a, b, d, g = 1.5, 1.0, 3.0, 1.0
    assert torch.allclose(LotkaVolterra(a, b, d, g)(0, y), torch.tensor([a*x - b*x*v, -d*v + g*x*v]))
    s, r, be = 10.0, 28.0, 8/3
    y3 = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(Lorenz()(0, y3), torch.tensor([s*(2 - 1), 1*(r - 3) - 2, 1*2 - be*3]))


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_lotka_volterra_keeps_its_invariant(method):
    m = LotkaVolterra().double()
    ts = torch.linspace(0, 10, 201, dtype=torch.float64)
    ys = simulate(m, torch.tensor([[1.0, 0.5], [3.0, 2.0]], dtype=torch.float64), ts, method=method).detach()
    h = lv_invariant(ys, m)
    tol = 1e-5 if method == "dopri5" else 1e-3
    assert (h - h[:, :1]).abs().max() < tol


class Decay(torch.nn.Module):
    "dy/dt = -k y, with the closed form y0 exp(-k t)."
    dim = 1
    def __init__(self, k):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(k, dtype=torch.float64))
    def forward(self, t, y): return -self.k*y


# dopri8 steps accurately but interpolates between steps at lower order: about 2e-5 here
@pytest.mark.parametrize("method,kw,tol", [("dopri5", {}, 1e-7), ("dopri8", {}, 5e-5), ("rk4", dict(step_size=0.01), 1e-8),
                                          ("euler", dict(step_size=0.001), 5e-3)])
def test_exponential_decay_closed_form(method, kw, tol):
    m = Decay(0.7)
    ts = torch.linspace(0, 3, 31, dtype=torch.float64)
    y0 = torch.tensor([[1.0], [2.5]], dtype=torch.float64)
    ys = simulate(m, y0, ts, method=method, **kw)
    exact = y0[:, None, :]*torch.exp(-0.7*ts)[None, :, None]
    assert ys.shape == (2, 31, 1)
    assert (ys - exact).abs().max().item() < tol


def test_gradient_through_solver_matches_closed_form():
    m = Decay(0.7)
    ts = torch.tensor([0.0, 2.0], dtype=torch.float64)
    y = simulate(m, torch.ones(1, 1, dtype=torch.float64), ts)[0, -1, 0]
    y.backward()
    assert math.isclose(m.k.grad.item(), -2.0*math.exp(-1.4), rel_tol=1e-6)


def test_simulate_layout_and_first_state():
    y0 = torch.rand(5, 2)
    ys = simulate(VDP(0.4), y0, torch.linspace(0, 2, 7))
    assert ys.shape == (5, 7, 2)
    assert torch.equal(ys[:, 0], y0)
    assert simulate(VDP(0.4), y0[0], torch.linspace(0, 2, 7)).shape == (7, 2)
    assert simulate(VDP(0.4), torch.rand(3, 4, 2), torch.linspace(0, 2, 7)).shape == (3, 4, 7, 2)


def test_simulate_float64_follows_inputs():
    m = LotkaVolterra().double()
    ys = simulate(m, torch.ones(2, 2, dtype=torch.float64), torch.linspace(0, 1, 3, dtype=torch.float64))
    assert ys.dtype == torch.float64


@pytest.mark.parametrize("y0,ts,match", [
    (torch.zeros(4, 3), torch.linspace(0, 1, 5), r"VDP has a state of dimension 2.*\(batch, 2\).*\(4, 3\)"),
    (torch.zeros(4, 2), torch.linspace(1, 0, 5), "strictly increasing ts"),
    (torch.zeros(4, 2), torch.tensor([0.0, 1.0, 1.0]), "strictly increasing ts"),
    (torch.zeros(4, 2), torch.zeros(2, 5), "1-D tensor of at least 2"),
    (torch.zeros(4, 2), torch.tensor([0.0]), "1-D tensor of at least 2"),
    (torch.zeros(4, 2), torch.tensor([0.0, float("nan")]), "NaN or inf in ts"),
    (torch.full((4, 2), float("inf")), torch.linspace(0, 1, 5), "NaN or inf in y0"),
])
def test_simulate_bad_input(y0, ts, match):
    with pytest.raises(ValueError, match=match):
        simulate(VDP(0.3), y0, ts)


def test_simulate_bad_types():
    with pytest.raises(TypeError, match="torch.Tensor"):
        simulate(VDP(0.3), [[0.0, 0.0]], torch.linspace(0, 1, 3))
    with pytest.raises(TypeError, match="floating point"):
        simulate(VDP(0.3), torch.zeros(1, 2, dtype=torch.long), torch.linspace(0, 1, 3))


@pytest.mark.parametrize("method,kw,match", [
    ("rk45", {}, "unknown solver method 'rk45'"),
    (None, {}, "unknown solver method None"),
    ("rk4", dict(step_size=0.0), "step_size must be a positive"),
    ("rk4", dict(step_size=-1), "step_size must be a positive"),
    ("rk4", dict(step_size=float("nan")), "step_size must be a positive"),
    ("dopri5", dict(rtol=-1e-6), "rtol must be a positive"),
])
def test_solver_options_bad_input(method, kw, match):
    with pytest.raises(ValueError, match=match):
        solver_options(method, **kw)


def test_adaptive_solver_never_gets_a_step_size(recwarn):
    kw = solver_options("dopri5", step_size=0.1)
    assert "options" not in kw
    simulate(VDP(0.3), torch.ones(1, 2), torch.linspace(0, 1, 3), method="dopri5", step_size=0.1)
    assert not [w for w in recwarn if "step_size" in str(w.message)]


@pytest.mark.parametrize("cls,args,match,exc", [
    (VDP, (0.0,), "nonzero mu", ValueError),
    (VDP, (float("nan"),), "finite mu", ValueError),
    (VDP, ("0.3",), "mu as a real number", TypeError),
    (LotkaVolterra, (1.0, float("inf")), "finite beta", ValueError),
    (Lorenz, (10.0, torch.ones(2)), "rho as a single number", ValueError),
    (NeuralDiffEq, (0,), "positive integer", ValueError),
    (NeuralDiffEq, (2.5,), "positive integer", ValueError),
])
def test_model_constructor_bad_input(cls, args, match, exc):
    with pytest.raises(exc, match=match):
        cls(*args)


def test_reprs_name_the_parameters():
    assert repr(VDP(0.3)) == "VDP(mu=0.3)"
    assert repr(LotkaVolterra(1.6, 1.1, 2.7, 1.2)) == "LotkaVolterra(alpha=1.6, beta=1.1, delta=2.7, gamma=1.2)"
    assert repr(Lorenz()) == "Lorenz(sigma=10, rho=28, beta=2.667)"
    assert repr(NeuralDiffEq(2)).startswith("NeuralDiffEq(")


def test_post_attribute_names_are_kept():
    assert isinstance(VDP(0.3).mu, torch.nn.Parameter)
    assert LotkaVolterra().model_params.shape == (4,)
    assert Lorenz().model_params.shape == (3,)
    assert isinstance(NeuralDiffEq().ann, torch.nn.Sequential)
    # the post's expression vdp_model.mu - true_mu
    assert abs((VDP(0.31).mu - 0.30).item() - 0.01) < 1e-6


def test_param_dict():
    assert param_dict(Lorenz(1.0, 2.0, 3.0)) == dict(sigma=1.0, rho=2.0, beta=3.0)
    m = VDP(0.5)
    m.mu.requires_grad_(False)
    assert param_dict(m) == {}
    d = param_dict(NeuralDiffEq(2))
    assert "ann.0.weight[0]" in d and len(d) == sum(p.numel() for p in NeuralDiffEq(2).parameters())


def test_models_run_in_float64_and_keep_dtype():
    for m in (VDP(0.3), LotkaVolterra(), Lorenz(), NeuralDiffEq(2)):
        m = m.double()
        y = torch.ones(2, m.dim, dtype=torch.float64)
        assert m(torch.tensor(0.0, dtype=torch.float64), y).dtype == torch.float64


# ---- the written-out Jacobians (the implicit solvers use them): autograd's, for any batch, population, dtype and complex states
_JACOBIAN_MODELS = {"VDP": lambda: VDP(3.0), "LotkaVolterra": lambda: LotkaVolterra(1.3, 0.9, 2.5, 1.1),
                    "Lorenz": lambda: Lorenz(9.0, 27.0, 2.5)}


def autograd_jacobian(model, y):
    "df/dy at each state of y (..., n) by autograd: (..., n, n). The states are independent, so the batch's sum has them all."
    n = y.shape[-1]
    J = torch.autograd.functional.jacobian(lambda s: model(torch.tensor(0.0), s).reshape(-1, n).sum(0), y)  # (n, ..., n)
    return J.movedim(0, -2)


@pytest.mark.parametrize("name", list(_JACOBIAN_MODELS))
@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_jacobian_matches_autograd(name, batch):
    m = _JACOBIAN_MODELS[name]().double()
    y = 3*torch.randn(*batch, m.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    J = m.jacobian(torch.tensor(0.0), y)
    assert J.shape == (*batch, m.dim, m.dim) and J.dtype == torch.float64
    torch.testing.assert_close(J, autograd_jacobian(m, y), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(_JACOBIAN_MODELS))
def test_jacobian_of_a_parameter_population_broadcasts_like_forward(name):
    "fit solves K parameter vectors at once, each parameter of shape (K, 1) against states (K, batch, n): copy k is model k's Jacobian."
    from paramfittorchdemo.solvers import ParamSpec, with_parameters
    m = _JACOBIAN_MODELS[name]().double()
    spec = ParamSpec.of(m)
    theta = spec.vector(m)
    thetas = torch.stack([theta, 1.5*theta, 0.5*theta])  # (3, P)
    y = torch.randn(3, 4, m.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    J = with_parameters(m, spec.population(thetas), lambda model: model.jacobian(torch.tensor(0.0), y))
    assert J.shape == (3, 4, m.dim, m.dim)
    for k in range(3):
        one = _JACOBIAN_MODELS[name]().double()
        spec.load(one, thetas[k])
        torch.testing.assert_close(J[k], one.jacobian(torch.tensor(0.0), y[k]), rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", list(_JACOBIAN_MODELS))
def test_jacobian_of_complex_states_is_the_complex_derivative(name):
    "A complex-step derivative of a whole solve evaluates the Jacobian at complex states: f is analytic, so J is its complex derivative."
    m = _JACOBIAN_MODELS[name]().double()
    gen = torch.Generator().manual_seed(3)
    y = torch.complex(torch.randn(4, m.dim, dtype=torch.float64, generator=gen), torch.randn(4, m.dim, dtype=torch.float64, generator=gen))
    J = m.jacobian(torch.tensor(0.0), y)
    assert J.dtype == torch.complex128
    d, eye = 1e-5, torch.eye(m.dim, dtype=torch.complex128)
    t = torch.tensor(0.0)
    cols = [(m(t, y + d*eye[j]) - m(t, y - d*eye[j]))/(2*d) for j in range(m.dim)]  # central differences in complex arithmetic
    torch.testing.assert_close(J, torch.stack(cols, -1), rtol=1e-8, atol=1e-8)
    assert not torch.allclose(J.imag, torch.zeros_like(J.imag))  # complex entries where the Jacobian depends on the state


@pytest.mark.parametrize("name", list(_JACOBIAN_MODELS))
def test_jacobian_dtype_follows_forward(name):
    m = _JACOBIAN_MODELS[name]()  # float32 parameters
    t = torch.tensor(0.0)
    for y in (torch.ones(2, m.dim), torch.ones(2, m.dim, dtype=torch.float64), torch.ones(2, m.dim, dtype=torch.complex64)):
        assert m.jacobian(t, y).dtype == m(t, y).dtype == y.dtype


@pytest.mark.parametrize("name", list(_JACOBIAN_MODELS))
def test_jacobian_is_differentiable_in_the_parameters(name):
    "Autograd through an implicit solve reaches the parameters through the Jacobian too: its parameter derivatives are forward's."
    m = _JACOBIAN_MODELS[name]().double()
    y = torch.randn(3, m.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    w = torch.randn(3, m.dim, m.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    got = torch.autograd.grad((m.jacobian(torch.tensor(0.0), y)*w).sum(), list(m.parameters()))
    ref = torch.autograd.grad((autograd_jacobian_graph(m, y)*w).sum(), list(m.parameters()))
    for a, b in zip(got, ref): torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def autograd_jacobian_graph(model, y):
    "autograd_jacobian with its graph kept (create_graph), so that it can be differentiated in the parameters."
    n = y.shape[-1]
    return torch.autograd.functional.jacobian(lambda s: model(torch.tensor(0.0), s).reshape(-1, n).sum(0), y,
                                              create_graph=True).movedim(0, -2)


@pytest.mark.parametrize("name", list(_JACOBIAN_MODELS))
def test_a_subclass_with_its_own_forward_does_not_inherit_the_jacobian(name):
    base = type(_JACOBIAN_MODELS[name]())
    class Scaled(base):
        def forward(self, t, y): return 2*super().forward(t, y)
    class Kept(base):  # the same forward: the Jacobian is still right
        pass
    make = lambda cls: cls(3.0) if base is VDP else cls()
    y = torch.ones(2, base.dim)
    with pytest.raises(NotImplementedError, match="Scaled has a forward of its own; define Scaled.jacobian"):
        make(Scaled).jacobian(torch.tensor(0.0), y)
    torch.testing.assert_close(make(Kept).jacobian(torch.tensor(0.0), y), autograd_jacobian(make(Kept), y))
