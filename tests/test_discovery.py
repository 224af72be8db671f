import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from paramfittorchdemo.data import create_sim_dataset
from paramfittorchdemo.discovery import PolynomialODE, plot_terms, sindy
from paramfittorchdemo.models import Lorenz, LotkaVolterra, param_dict, simulate
from paramfittorchdemo.solvers import ParamSpec, rhs_traits
from paramfittorchdemo.fitting import fit

ALPHA, BETA, GAMMA, DELTA = 1.3, 0.9, 0.8, 1.8
LV_TERMS = {("x", "x"): ALPHA, ("x", "x y"): -BETA, ("y", "y"): -DELTA, ("y", "x y"): GAMMA}
LORENZ_TERMS = {("x", "x"): -10.0, ("x", "y"): 10.0, ("y", "x"): 28.0, ("y", "y"): -1.0, ("y", "x z"): -1.0,
                ("z", "z"): -8/3, ("z", "x y"): 1.0}
F64 = torch.float64


def lv_coefficients():
    "The true Lotka-Volterra model in PolynomialODE's layout: features 1, x, y, x^2, x y, y^2."
    return torch.tensor([[0.0, ALPHA, 0.0, 0.0, -BETA, 0.0], [0.0, 0.0, -DELTA, 0.0, GAMMA, 0.0]], dtype=F64)


def expected_exponents(dim, degree, include_bias):
    "The library's exponent tuples, built independently: by total degree, then descending lexicographically."
    out = []
    for d in range(0 if include_bias else 1, degree + 1):
        out += sorted((e for e in itertools.product(range(d + 1), repeat=dim) if sum(e) == d), reverse=True)
    return out


def expected_name(exps, names):
    parts = [n if e == 1 else f"{n}^{e}" for n, e in zip(names, exps) if e]
    return " ".join(parts) or "1"


def assert_recovers(model, want, rtol):
    "Exactly the terms of `want`, each coefficient within `rtol` relatively."
    got = model.terms()
    assert set(got) == set(want), f"terms {sorted(got)} != {sorted(want)}"
    for k, v in want.items(): assert abs(got[k]/v - 1) < rtol, (k, got[k], v)


@pytest.fixture(scope="module")
def lv_orbit():
    "One Lotka-Volterra orbit (float64): ts (201,), ys (201, 2), exact derivatives (201, 2)."
    lv = LotkaVolterra(ALPHA, BETA, DELTA, GAMMA).double()
    ts = torch.linspace(0, 10, 201, dtype=F64)
    with torch.no_grad():
        ys = simulate(lv, torch.tensor([[1.0, 1.0]], dtype=F64), ts, rtol=1e-10, atol=1e-12)[0]
        return ts, ys, lv(0, ys)


@pytest.fixture(scope="module")
def lorenz_orbit():
    lorenz = Lorenz(10.0, 28.0, 8/3).double()
    ts = torch.linspace(0, 5, 1001, dtype=F64)
    with torch.no_grad():
        ys = simulate(lorenz, torch.tensor([[-8.0, 8.0, 27.0]], dtype=F64), ts, rtol=1e-10, atol=1e-12)[0]
        return ts, ys, lorenz(0, ys)


# --- the library: ordering, names, values -------------------------------------------------------------------------

@pytest.mark.parametrize("include_bias", [True, False])
@pytest.mark.parametrize("degree", [1, 2, 3])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_features_are_the_monomials_in_order(dim, degree, include_bias):
    m = PolynomialODE(dim, degree, include_bias=include_bias)
    exps = expected_exponents(dim, degree, include_bias)
    assert list(m.powers) == exps
    assert m.n_features == len(exps) == math.comb(dim + degree, degree) - (0 if include_bias else 1)
    names = ("x", "y", "z")[:dim]
    assert m.feature_names == [expected_name(e, names) for e in exps]
    y = torch.randn(4, 5, dim, dtype=F64)
    want = torch.stack([math.prod((y[..., i]**e for i, e in enumerate(ex)), start=torch.ones(4, 5, dtype=F64)) for ex in exps], -1)
    torch.testing.assert_close(m.features(y), want)


def test_feature_names_examples():
    assert PolynomialODE(2).feature_names == ["1", "x", "y", "x^2", "x y", "y^2"]
    assert PolynomialODE(2, 3).feature_names[6:] == ["x^3", "x^2 y", "x y^2", "y^3"]
    assert PolynomialODE(1, 3).feature_names == ["1", "x", "x^2", "x^3"]
    assert PolynomialODE(3, 2, include_bias=False).feature_names == ["x", "y", "z", "x^2", "x y", "x z", "y^2", "y z", "z^2"]
    assert PolynomialODE(4, 2).feature_names[:6] == ["1", "x0", "x1", "x2", "x3", "x0^2"]
    assert PolynomialODE(2, names=["u", "v"]).feature_names[3:] == ["u^2", "u v", "v^2"]


@pytest.mark.parametrize("dim,degree", [(1, 3), (2, 2), (3, 3)])
def test_ordering_matches_pysindys_library(dim, degree):
    ps = pytest.importorskip("pysindy")
    lib = ps.PolynomialLibrary(degree=degree).fit(np.random.rand(30, dim))
    assert [tuple(int(e) for e in p) for p in lib.powers_] == list(PolynomialODE(dim, degree).powers)


# --- coefficients, mask and the trainable vector ------------------------------------------------------------------

def test_default_model_has_every_term_at_zero():
    m = PolynomialODE(2)
    assert m.mask.all() and m.coef.shape == (12,) and (m.coef == 0).all()
    assert m.param_names[:3] == ("c[x: 1]", "c[x: x]", "c[x: y]") and m.param_names[-1] == "c[y: y^2]"
    assert m.dim == 2 and m.autonomous is True


def test_active_terms_are_the_only_parameter():
    C = lv_coefficients()
    m = PolynomialODE(2, coefficients=C)
    assert [n for n, _ in m.named_parameters()] == ["model_params"]
    assert m.coef is m.model_params and isinstance(m.coef, torch.nn.Parameter)
    assert m.coef.dtype == F64
    torch.testing.assert_close(m.coef.detach(), torch.tensor([ALPHA, -BETA, -DELTA, GAMMA], dtype=F64))
    assert m.param_names == ("c[x: x]", "c[x: x y]", "c[y: y]", "c[y: x y]")
    assert param_dict(m) == dict(zip(m.param_names, m.coef.tolist()))
    torch.testing.assert_close(m.coefficients.detach(), C)
    assert list(m.state_dict()) == ["model_params"]
    # the full matrix and the forward pass follow in-place changes of coef; absent terms stay zero
    with torch.no_grad(): m.coef.mul_(2)
    torch.testing.assert_close(m.coefficients.detach(), 2*C)
    y = torch.rand(3, 2, dtype=F64)
    torch.testing.assert_close(m(0, y), 2*LotkaVolterra(ALPHA, BETA, DELTA, GAMMA).double()(0, y))


def test_gradients_reach_only_the_active_coefficients():
    m = PolynomialODE(2, coefficients=lv_coefficients())
    m(0, torch.rand(5, 2, dtype=F64)).sum().backward()
    assert m.coef.grad.shape == (4,) and (m.coef.grad != 0).all()
    g, = torch.autograd.grad(m.coefficients.sum(), m.coef)  # the full matrix is differentiable in coef
    torch.testing.assert_close(g, torch.ones(4, dtype=F64))


def test_mask_selects_terms_and_drops_the_rest():
    C = lv_coefficients()
    m = PolynomialODE(2, coefficients=C, mask=C > 0)
    assert m.terms() == {("x", "x"): ALPHA, ("y", "x y"): GAMMA}
    torch.testing.assert_close(m.coefficients.detach(), C.clamp_min(0))
    z = PolynomialODE(2, mask=C != 0)
    assert z.coef.tolist() == [0.0]*4 and z.mask.tolist() == (C != 0).tolist()
    zero = PolynomialODE(2, coefficients=torch.zeros(2, 6))  # no nonzero coefficient, no mask: no terms
    assert zero.coef.numel() == 0 and not zero.coef.requires_grad
    assert param_dict(zero) == {} and zero.equations() == ["dx/dt = 0", "dy/dt = 0"]
    y = torch.rand(4, 2)
    torch.testing.assert_close(zero(0, y), torch.zeros_like(y))
    arr = PolynomialODE(2, coefficients=C.numpy(), mask=(C != 0).numpy())  # numpy inputs
    assert arr.terms() == PolynomialODE(2, coefficients=C).terms()


@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_forward_matches_lotka_volterra_for_any_batch(batch):
    m, lv = PolynomialODE(2, coefficients=lv_coefficients()), LotkaVolterra(ALPHA, BETA, DELTA, GAMMA).double()
    y = torch.rand(*batch, 2, dtype=F64) + 0.5
    assert m(torch.tensor(0.0), y).shape == y.shape
    torch.testing.assert_close(m(torch.tensor(0.0), y), lv(0, y))


def test_forward_matches_the_full_matrix_product():
    gen = torch.Generator().manual_seed(1)
    m = PolynomialODE(3, 3, coefficients=torch.randn(3, 20, generator=gen, dtype=F64))
    y = torch.randn(7, 3, dtype=F64, generator=gen)
    torch.testing.assert_close(m(0, y), m.features(y) @ m.coefficients.detach().T)


# --- complex inputs and the library's complex-step Jacobians ------------------------------------------------------

def test_complex_states_pass_through():
    m = PolynomialODE(2, coefficients=lv_coefficients())
    y = torch.rand(5, 2, dtype=F64) + 1j*torch.rand(5, 2, dtype=F64)
    out = m(0, y)
    assert out.dtype == torch.complex128
    x, p = y[..., 0], y[..., 1]
    torch.testing.assert_close(out, torch.stack([ALPHA*x - BETA*x*p, -DELTA*p + GAMMA*x*p], -1))
    torch.testing.assert_close(m.features(y)[..., 4], x*p)


def test_complex_step_derivative_matches_autograd():
    gen = torch.Generator().manual_seed(2)
    m = PolynomialODE(3, 3, coefficients=torch.randn(3, 20, generator=gen, dtype=F64))
    y, v = torch.randn(4, 3, dtype=F64, generator=gen), torch.randn(4, 3, dtype=F64, generator=gen)
    h = 1e-20
    with torch.no_grad(): d_complex = m(0, y + 1j*h*v).imag/h
    _, d_auto = torch.autograd.functional.jvp(lambda s: m(0, s), y, v)
    torch.testing.assert_close(d_complex, d_auto)


def test_solvers_treat_it_as_analytic_and_population_friendly():
    m = PolynomialODE(2, coefficients=lv_coefficients())
    spec = ParamSpec.of(m)
    assert spec.names == ["model_params"] and spec.size == 4
    assert rhs_traits(m, spec, spec.vector(m), 2) == (True, "complex")
    m3 = PolynomialODE(3, 2, coefficients=torch.randn(3, 10, dtype=F64))
    s3 = ParamSpec.of(m3)
    assert rhs_traits(m3, s3, s3.vector(m3), 3) == (True, "complex")


# --- printing -----------------------------------------------------------------------------------------------------

def test_equations_text():
    m = PolynomialODE(2, coefficients=lv_coefficients())
    assert m.equations() == ["dx/dt = 1.300 x - 0.900 x y", "dy/dt = -1.800 y + 0.800 x y"]
    assert m.equations(1) == ["dx/dt = 1.3 x - 0.9 x y", "dy/dt = -1.8 y + 0.8 x y"]
    C = torch.zeros(2, 10)
    C[0, 0], C[0, 3], C[0, 7] = -0.5, 2.0, -0.25  # -0.5 + 2 x^2 - 0.25 x^2 y; nothing for y
    m = PolynomialODE(2, 3, coefficients=C, names=["u", "v"])
    assert m.equations(2) == ["du/dt = -0.50 + 2.00 u^2 - 0.25 u^2 v", "dv/dt = 0"]
    r = repr(m)
    assert r.startswith("PolynomialODE(") and "du/dt = -0.500 + 2.000 u^2 - 0.250 u^2 v" in r and "3 of 20 terms active" in r
    with pytest.raises(ValueError, match="precision"): m.equations(-1)


def test_terms_dict():
    m = PolynomialODE(3, coefficients=torch.tensor([[0, -10, 10, 0, 0, 0, 0, 0, 0, 0],
                                                    [0, 28, -1, 0, 0, 0, -1, 0, 0, 0],
                                                    [0, 0, 0, -8/3, 0, 1, 0, 0, 0, 0]], dtype=F64))
    assert m.terms() == LORENZ_TERMS


# --- bad inputs to the model --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,err,match", [
    (dict(dim=0), ValueError, "dim as an integer >= 1"),
    (dict(dim=True), ValueError, "dim as an integer"),
    (dict(dim=2.0), ValueError, "dim as an integer"),
    (dict(dim=2, degree=0), ValueError, "degree as an integer >= 1"),
    (dict(dim=2, coefficients=torch.zeros(2, 5)), ValueError, r"\(dim, n_features\) = \(2, 6\)"),
    (dict(dim=2, coefficients=torch.zeros(6)), ValueError, "shape"),
    (dict(dim=2, coefficients=torch.full((2, 6), float("nan"))), ValueError, "NaN or inf in coefficients"),
    (dict(dim=2, coefficients=torch.zeros(2, 6, dtype=torch.complex64)), TypeError, "real numbers"),
    (dict(dim=2, coefficients=[["a"]*6]*2), TypeError, "array of numbers"),
    (dict(dim=2, mask=torch.ones(2, 6)), TypeError, "boolean"),
    (dict(dim=2, mask=torch.ones(2, 5, dtype=torch.bool)), ValueError, r"mask of shape \(dim, n_features\)"),
    (dict(dim=2, names=["x"]), ValueError, "list of 2 state names"),
    (dict(dim=2, names="xy"), ValueError, "list of 2 state names"),
    (dict(dim=2, names=["x", "x"]), ValueError, "distinct"),
    (dict(dim=2, names=["a b", "c"]), ValueError, "without spaces"),
    (dict(dim=2, include_bias="yes"), TypeError, "include_bias as True or False"),
    (dict(dim=2, order=2), TypeError, "unexpected keyword"),
])
def test_bad_model_inputs(kwargs, err, match):
    with pytest.raises(err, match=match): PolynomialODE(**kwargs)


def test_features_checks_the_state_shape():
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\), got \(4, 3\)"): PolynomialODE(2).features(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"): PolynomialODE(2).features([1.0, 2.0])


# --- sindy: recovery ----------------------------------------------------------------------------------------------

def test_sindy_recovers_lotka_volterra_from_exact_derivatives(lv_orbit):
    pytest.importorskip("pysindy")
    ts, ys, dys = lv_orbit
    m = sindy(ys, dys)
    assert isinstance(m, PolynomialODE) and m.coef.dtype == F64 and m.degree == 2
    assert_recovers(m, LV_TERMS, 0.01)
    assert m.equations() == ["dx/dt = 1.300 x - 0.900 x y", "dy/dt = -1.800 y + 0.800 x y"]
    with torch.no_grad(): torch.testing.assert_close(simulate(m, ys[:1], ts)[0], ys, rtol=1e-3, atol=1e-3)


def test_sindy_recovers_lorenz_from_exact_derivatives(lorenz_orbit):
    pytest.importorskip("pysindy")
    _, ys, dys = lorenz_orbit
    assert_recovers(sindy(ys, dys), LORENZ_TERMS, 0.01)


def test_sindy_estimates_derivatives_from_trajectories(lv_orbit, lorenz_orbit):
    pytest.importorskip("pysindy")
    ts, ys, _ = lv_orbit
    assert_recovers(sindy(ys, ts=ts), LV_TERMS, 0.05)
    assert_recovers(sindy(ys.numpy(), ts=ts.numpy()), LV_TERMS, 0.05)  # numpy in, default dtype out
    assert sindy(ys.numpy(), ts=ts.numpy()).coef.dtype == torch.get_default_dtype()
    tl, yl, _ = lorenz_orbit
    assert_recovers(sindy(yl, ts=tl), LORENZ_TERMS, 0.05)


def test_sindy_with_several_trajectories(lv_orbit):
    pytest.importorskip("pysindy")
    ts, _, _ = lv_orbit
    lv = LotkaVolterra(ALPHA, BETA, DELTA, GAMMA).double()
    with torch.no_grad():
        ys = simulate(lv, torch.tensor([[1.0, 1.0], [3.0, 0.5], [0.5, 2.0]], dtype=F64), ts)  # (3, time, 2)
        dys = lv(0, ys)
    short = [ys[0, :60], ys[1, :90], ys[2]]  # different lengths
    assert_recovers(sindy(short, [dys[0, :60], dys[1, :90], dys[2]]), LV_TERMS, 0.01)
    assert_recovers(sindy(short, ts=[ts[:60], ts[:90], ts]), LV_TERMS, 0.05)
    assert_recovers(sindy(list(ys), ts=ts), LV_TERMS, 0.05)  # one grid shared by every trajectory
    assert_recovers(sindy(ys, ts=ts), LV_TERMS, 0.05)  # (batch, time, state), as simulate returns
    assert_recovers(sindy(ys, dys), LV_TERMS, 0.01)
    # each trajectory alone has fewer samples than the 6 features, together they are enough (with little ridge bias)
    assert_recovers(sindy([ys[0, :4], ys[1, :4]], [dys[0, :4], dys[1, :4]], alpha=1e-8), LV_TERMS, 0.01)


def test_sindy_options(lv_orbit, lorenz_orbit):
    pytest.importorskip("pysindy")
    ts, ys, dys = lv_orbit
    m = sindy(ys, dys, names=["prey", "predator"], include_bias=False)
    assert m.feature_names[0] == "prey" and not m.include_bias and m.n_features == 5
    assert_recovers(m, {("prey", "prey"): ALPHA, ("prey", "prey predator"): -BETA,
                        ("predator", "predator"): -DELTA, ("predator", "prey predator"): GAMMA}, 0.01)
    # normalized columns: threshold and alpha apply to the scaled problem, where alpha=0.05 is a strong ridge
    assert_recovers(sindy(ys, dys, normalize=True, alpha=1e-6), LV_TERMS, 0.01)
    assert_recovers(sindy(ys, dys, normalize=True, alpha=1e-6, threshold=10.0), LV_TERMS, 0.01)  # 10 > every raw coefficient
    # a degree-3 library: one orbit of a conservative system makes the columns nearly collinear, so the ridge must be weak
    assert_recovers(sindy(ys, dys, degree=3, alpha=1e-6), LV_TERMS, 0.01)
    _, yl, dyl = lorenz_orbit
    for bias in (True, False):
        m = sindy(yl, dyl, degree=3, include_bias=bias)
        assert m.n_features == 20 - (not bias)
        assert_recovers(m, LORENZ_TERMS, 0.01)
    # a threshold above every coefficient removes every term
    with pytest.warns(UserWarning): none = sindy(ys, dys, threshold=5.0)
    assert none.terms() == {} and none.equations() == ["dx/dt = 0", "dy/dt = 0"]


def test_sindy_reads_a_learned_term(lv_orbit):
    "Any target works: here only the interaction part of the model, as a learned term would give it."
    pytest.importorskip("pysindy")
    _, ys, _ = lv_orbit
    x, y = ys.unbind(-1)
    assert_recovers(sindy(ys, torch.stack([-BETA*x*y, GAMMA*x*y], -1)), {("x", "x y"): -BETA, ("y", "x y"): GAMMA}, 0.01)


# --- sindy: bad inputs --------------------------------------------------------------------------------------------

def test_sindy_bad_inputs(lv_orbit):
    pytest.importorskip("pysindy")
    ts, ys, dys = lv_orbit
    nan = ys.clone(); nan[5, 1] = float("nan")
    bad_ts = ts.clone(); bad_ts[3] = bad_ts[2]
    cases = [
        (lambda: sindy(ys, dys[:-1]), ValueError, "derivatives shaped like the states"),
        (lambda: sindy(ys, dys[:, :1]), ValueError, "derivatives shaped like the states"),
        (lambda: sindy([ys, ys], [dys]), ValueError, "derivatives shaped like the states"),
        (lambda: sindy(ys[:, 0], ts=ts), ValueError, r"reshape\(-1, 1\)"),
        (lambda: sindy(ys[None, None]), ValueError, r"shape \(N, dim\)"),
        (lambda: sindy(nan, dys), ValueError, "NaN or inf in states"),
        (lambda: sindy(ys, dys*float("inf")), ValueError, "NaN or inf in derivatives"),
        (lambda: sindy(ys + 0j, dys), TypeError, "real numbers"),
        (lambda: sindy([ys, ys[:, :1]], [dys, dys[:, :1]]), ValueError, "same number of states"),
        (lambda: sindy(ys[:5], dys[:5]), ValueError, "at least as many samples as library features"),
        (lambda: sindy(ys[:9], dys[:9], degree=3), ValueError, "has 10 features, got 9 samples"),
        (lambda: sindy(ys), ValueError, "needs ts"),
        (lambda: sindy(ys, ts=ts[:-1]), ValueError, r"ts of shape \(201,\)"),
        (lambda: sindy(ys, ts=bad_ts), ValueError, "strictly increasing ts"),
        (lambda: sindy(ys, ts=ts*float("nan")), ValueError, "NaN or inf in ts"),
        (lambda: sindy([ys, ys], ts=[ts]), ValueError, "2 trajectories but 1 time grids"),
        (lambda: sindy(ys[:2], ts=ts[:2], include_bias=False, degree=1), ValueError, "at least 3 samples"),
        (lambda: sindy(ys, dys, degree=0), ValueError, "degree as an integer >= 1"),
        (lambda: sindy(ys, dys, threshold=-0.1), ValueError, "threshold as a finite number >= 0"),
        (lambda: sindy(ys, dys, alpha=float("nan")), ValueError, "alpha as a finite number >= 0"),
        (lambda: sindy(ys, dys, normalize=1), TypeError, "normalize as True or False"),
        (lambda: sindy(ys, dys, names=["x"]), ValueError, "list of 2 state names"),
        (lambda: sindy(ys, dys, optimizer="sr3"), TypeError, "unexpected keyword"),
        (lambda: sindy("states", dys), TypeError, "array of numbers"),
    ]
    for call, err, match in cases:
        with pytest.raises(err, match=match): call()


# --- refitting the discovered terms -------------------------------------------------------------------------------

def test_fit_refits_exactly_the_active_coefficients():
    lv = LotkaVolterra(ALPHA, BETA, DELTA, GAMMA)
    data = create_sim_dataset(lv, torch.linspace(0, 10, 41), 4, 0.01, initial_conditions_default=torch.tensor([1.0, 1.0]), seed=0)
    C = lv_coefficients().float()
    wrong = C*torch.tensor([[1.0, 1.08, 1.0, 1.0, 0.93, 1.0], [1.0, 1.0, 1.05, 1.0, 0.9, 1.0]])
    m = PolynomialODE(2, coefficients=wrong)
    res = fit(m, data)
    assert list(res.params) == list(m.param_names) == ["c[x: x]", "c[x: x y]", "c[y: y]", "c[y: x y]"]
    torch.testing.assert_close(torch.tensor(list(res.params.values()), dtype=F64), m.coef.detach().double())
    assert res.jacobian == "complex"
    true = torch.tensor([ALPHA, -BETA, -DELTA, GAMMA])
    assert ((m.coef.detach() - true)/true).abs().max() < 0.01
    assert (m.coefficients.detach()[~m.mask] == 0).all() and m.mask.tolist() == (C != 0).tolist()


def test_sindy_then_fit(lv_orbit):
    "The workflow of the notebook: structure from SINDy on noisy, coarse data, coefficients from fit."
    pytest.importorskip("pysindy")
    lv = LotkaVolterra(ALPHA, BETA, DELTA, GAMMA).double()
    data = create_sim_dataset(lv, torch.linspace(0, 10, 41, dtype=F64), 4, 0.02,
                              initial_conditions_default=torch.tensor([1.0, 1.0]), seed=0)
    rough = sindy([y for _, y in data], ts=[t for t, _ in data], threshold=0.2)
    assert set(rough.terms()) == set(LV_TERMS)
    fit(rough, data)
    assert_recovers(rough, LV_TERMS, 0.01)


# --- pysindy stays optional ---------------------------------------------------------------------------------------

def test_works_without_pysindy():
    code = "\n".join([
        "import sys; sys.modules['pysindy'] = None",
        "import torch, paramfittorchdemo, paramfittorchdemo.discovery as d",
        "m = d.PolynomialODE(2, coefficients=torch.tensor([[0, 1.3, 0, 0, -0.9, 0], [0, 0, -1.8, 0, 0.8, 0]]))",
        "assert m.equations() == ['dx/dt = 1.300 x - 0.900 x y', 'dy/dt = -1.800 y + 0.800 x y']",
        "assert m(0, torch.ones(3, 2)).shape == (3, 2)",
        "try: d.sindy(torch.rand(50, 2), torch.rand(50, 2))",
        "except ImportError as e: print('IMPORTERROR', e)",
        "assert 'sklearn' not in sys.modules",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "IMPORTERROR" in out.stdout and "paramfittorchdemo[discovery]" in out.stdout


# --- plot_terms ---------------------------------------------------------------------------------------------------

def test_plot_terms(lv_orbit):
    import matplotlib.pyplot as plt
    ts, ys, dys = lv_orbit
    m = PolynomialODE(2, coefficients=lv_coefficients()*1.1)
    with torch.no_grad(): learned = m(0, ys)
    fig, ax = plot_terms(ts, learned, dys, title="terms")
    assert [l.get_label() for l in ax.lines] == ["true x", "learned x", "true y", "learned y"]
    assert ax.get_title() == "terms" and ax.get_xlabel() == "t"
    np.testing.assert_allclose(ax.lines[1].get_ydata(), learned[:, 0].numpy())
    plt.close(fig)
    fig, ax = plt.subplots()
    f2, a2 = plot_terms(ts.numpy(), learned[:, 1], names=["predator"], ax=ax)  # (time,) is one state; draws on ax
    assert (f2, a2) == (fig, ax) and [l.get_label() for l in ax.lines] == ["learned predator"]
    learned.requires_grad_(True)
    plot_terms(ts, learned*1)  # tensors that need grad are detached
    with pytest.raises(ValueError, match=r"\(time, dim\)"): plot_terms(ts, learned[:-1])
    with pytest.raises(ValueError, match="true shaped like learned"): plot_terms(ts, dys, dys[:, :1])
    with pytest.raises(ValueError, match="list of 2 state names"): plot_terms(ts, dys, names=["x"])


def test_estimate_knows_the_coefficients_by_name():
    from paramfittorchdemo.estimation import Param, estimate
    lv = LotkaVolterra(ALPHA, BETA, DELTA, GAMMA)
    data = create_sim_dataset(lv, torch.linspace(0, 10, 41), 4, 0.01, initial_conditions_default=torch.tensor([1.0, 1.0]), seed=0)
    m = PolynomialODE(2, coefficients=lv_coefficients().float()*1.05)
    estimate(m, data, params={"c[x: x]": Param(ALPHA, fixed=True), "c[y: y]": Param(upper=0.0)})
    assert m.terms()[("x", "x")] == pytest.approx(ALPHA)  # held fixed
    assert_recovers(m, LV_TERMS, 0.01)
