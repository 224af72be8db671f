"""t0: the time at which known or fitted initial states apply, before the first observation, without a made-up data point (issue 21,
item 5): estimate, fit, fit_many and Observations; degrees of freedom and standard errors count only the real observations, and agree
with scipy's least_squares over solve_ivp."""
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from paramfittorchdemo import FunctionODE, Observations, SimODEData, estimate, fit, fit_many, simulate

scipy = pytest.importorskip("scipy")
from scipy.integrate import solve_ivp  # noqa: E402
from scipy.optimize import least_squares  # noqa: E402

f64 = dict(dtype=torch.float64)
T = torch.arange(1.0, 6.0, **f64)  # observed at t = 1, ..., 5; the known start y(0) = 1 is no observation


class Decay(nn.Module):
    "y' = -k y."
    autonomous = True
    def __init__(self, k=0.5):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(k, **f64))

    def forward(self, t, y): return -self.k*y


class Chain(nn.Module):
    "A -> B ->: A' = -k1 A, B' = k1 A - k2 B."
    autonomous = True
    dim = 2
    def __init__(self, k1=0.5, k2=0.5):
        super().__init__()
        self.k1, self.k2 = nn.Parameter(torch.tensor(k1, **f64)), nn.Parameter(torch.tensor(k2, **f64))

    def forward(self, t, y):
        a, b = y.unbind(-1)
        return torch.stack([-self.k1*a, self.k1*a - self.k2*b], -1)


class Dose(nn.Module):
    "y' = -k y + d while 1 <= t < 2: a dose given over one time unit; the right-hand side reads t."
    def __init__(self, k=1.0, d=1.0):
        super().__init__()
        self.k, self.d = nn.Parameter(torch.tensor(k, **f64)), nn.Parameter(torch.tensor(d, **f64))

    def forward(self, t, y): return -self.k*y + self.d*((t >= 1.0) & (t < 2.0)).to(y.dtype)


def decay_values(k=0.7, t=T, start=0.0, seed=0, sigma=0.01):
    "exp(-k (t - start)) with noise, (time,)."
    g = torch.Generator().manual_seed(seed)
    return torch.exp(-k*(t - start)) + sigma*torch.randn(len(t), generator=g, **f64)


def quiet(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kw)


# ---------------------------------------------------------------- scipy's answer: least_squares over solve_ivp, Gauss-Newton errors
def scipy_decay(t, y, t0, x0, a0=None):
    """Least squares of y' = -k y from y(t0) = a0 (known) or a fitted a0 (x = [k, a0]), solved by solve_ivp; the standard errors from the
    Gauss-Newton covariance s^2 (J'J)^-1 with J by central differences at the optimum."""
    t, y = np.asarray(t), np.asarray(y)
    def res(x):
        k, start = x[0], (a0 if a0 is not None else x[1])
        sol = solve_ivp(lambda s, z: -k*z, (t0, t[-1]), [start], t_eval=t, rtol=1e-12, atol=1e-14, method="DOP853")
        return sol.y[0] - y
    out = least_squares(res, x0, method="trf", jac="3-point", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    x, r = out.x, res(out.x)
    J = np.stack([(res(x + 1e-6*e) - res(x - 1e-6*e))/2e-6 for e in np.eye(len(x))], 1)  # (m, p)
    s2 = r @ r/(len(r) - len(x))
    return x, np.sqrt(np.diag(s2*np.linalg.inv(J.T @ J))), len(r) - len(x)


# ---------------------------------------------------------------- estimate
def test_known_start_before_the_first_observation_counts_only_real_observations():
    "y(0) = 1 known, observed at t = 1..5: t0=0 recovers k with n_obs - 1 degrees of freedom; a made-up point at t = 0 adds one."
    y = decay_values()
    e = estimate(Decay(), Observations([T], [y[:, None]]), t0=0.0, initial_conditions=torch.ones(1, 1, **f64))
    assert e.success and abs(e.params["k"] - 0.7) < 3*e.stderr["k"]
    assert (e.n_data, e.n_varys, e.dof) == (5, 1, 4)
    assert e.t0.tolist() == [0.0]
    fake = Observations([torch.cat([torch.zeros(1, **f64), T])], [torch.cat([torch.ones(1, **f64), y])[:, None]])
    f = estimate(Decay(), fake, initial_conditions="first")
    assert (f.n_data, f.dof) == (6, 5)  # one more: the made-up point
    assert math.isclose(e.params["k"], f.params["k"], rel_tol=1e-7) and math.isclose(e.ssr, f.ssr, rel_tol=1e-6)
    # the same Jacobian (the made-up point's residual is 0 and does not move), but s^2 = ssr/dof: the errors differ by sqrt(5/4)
    assert math.isclose(e.stderr["k"]/f.stderr["k"], math.sqrt(5/4), rel_tol=1e-5)
    assert math.isclose(e.redchi*4, f.redchi*5, rel_tol=1e-6)


def test_standard_errors_agree_with_scipy():
    "The estimate and its standard error, known start and fitted start at t0 = 0, against least_squares over solve_ivp."
    y = decay_values(seed=3)
    obs = Observations([T], [y[:, None]], t0=0.0)  # t0 on the observations: estimate(t0=None) takes it
    known = estimate(Decay(), obs, initial_conditions=torch.ones(1, 1, **f64), rtol=1e-10, atol=1e-12)
    x, se, dof = scipy_decay(T, y, 0.0, [0.5], a0=1.0)
    assert known.dof == dof == 4
    assert math.isclose(known.params["k"], x[0], rel_tol=1e-6) and math.isclose(known.stderr["k"], se[0], rel_tol=1e-4)
    fitted = estimate(Decay(), obs, rtol=1e-10, atol=1e-12)
    x, se, dof = scipy_decay(T, y, 0.0, [0.5, 0.8])
    assert fitted.dof == dof == 3
    assert math.isclose(fitted.params["k"], x[0], rel_tol=1e-6) and math.isclose(fitted.stderr["k"], se[0], rel_tol=1e-4)
    assert math.isclose(float(fitted.initial_conditions[0, 0]), x[1], rel_tol=1e-6)
    assert math.isclose(float(fitted.ic_stderr[0, 0]), se[1], rel_tol=1e-4)


def test_fitted_initial_states_at_t0_before_the_first_observation():
    "A -> B from A(0) = 2, B(0) = 0, observed from t = 1 on: the states at t0 = 0 are fitted, with shooting and horizons alike."
    t = torch.arange(1.0, 8.5, 0.5, **f64)
    true0 = torch.tensor([[2.0, 0.0]], **f64)
    with torch.no_grad(): ys = simulate(Chain(0.8, 0.3), true0, torch.cat([torch.zeros(1, **f64), t]), rtol=1e-11, atol=1e-13)[0, 1:]
    ys = ys + 0.01*torch.randn(ys.shape, generator=torch.Generator().manual_seed(1), **f64)
    obs = Observations([t], [ys], columns=["A", "B"])
    e = estimate(Chain(), obs, t0=0.0)
    assert e.success and (e.n_data, e.n_varys, e.dof) == (30, 4, 26)
    for k, v in dict(k1=0.8, k2=0.3).items(): assert abs(e.params[k] - v) < 4*e.stderr[k], (k, e.params[k], e.stderr[k])
    assert ((e.initial_conditions - true0).abs() < 4*e.ic_stderr).all(), (e.initial_conditions, e.ic_stderr)
    assert "[[Initial states]] (at t0 = 0)" in e.fit_report()
    ts, mean, lo, hi = e.predict(0)  # the fitted curve (and plot_fit) starts at t0, from the fitted states
    assert float(ts[0]) == 0.0 and torch.allclose(mean[0], e.initial_conditions[0], atol=1e-9)
    shot = estimate(Chain(), obs, t0=0.0, shooting=3)  # the first segment starts at t0; single shooting refines it
    staged = estimate(Chain(), obs, t0=0.0, horizons=(0.25, 0.5))  # fractions of the span from t0
    for other in (shot, staged):
        assert other.success and other.dof == e.dof
        for k in e.params: assert math.isclose(other.params[k], e.params[k], rel_tol=1e-5)
        assert torch.allclose(other.initial_conditions, e.initial_conditions, rtol=1e-5, atol=1e-6)


def test_a_t0_per_trajectory():
    "Two trajectories from y = 1, one at t = 0, one at t = 0.5, both observed at t = 1..5: each solve starts at its own t0."
    ys = torch.stack([decay_values(seed=4), decay_values(start=0.5, seed=5)])[..., None]
    ones = torch.ones(2, 1, **f64)
    e = estimate(Decay(), Observations.from_arrays(T, ys), t0=torch.tensor([0.0, 0.5], **f64), initial_conditions=ones)
    assert e.success and abs(e.params["k"] - 0.7) < 3*e.stderr["k"] and (e.n_data, e.dof) == (10, 9)
    assert e.t0.tolist() == [0.0, 0.5]
    same = estimate(Decay(), Observations.from_arrays(T, ys, t0=[0.0, 0.5]), initial_conditions=ones)
    assert math.isclose(same.params["k"], e.params["k"], rel_tol=1e-10)
    wrong = quiet(estimate, Decay(), Observations.from_arrays(T, ys), t0=0.0, initial_conditions=ones)
    assert wrong.ssr > 10*e.ssr  # the second trajectory does not start at 0
    with pytest.raises(ValueError, match=r"the same time \(the same t0; these start at \[0.0, 0.5\]\)"):
        estimate(Dose(), Observations.from_arrays(T, ys), t0=[0.0, 0.5], initial_conditions=ones)  # a model that reads t


def test_t0_at_the_first_observation_changes_nothing():
    "t0 equal to the first times is today's estimate, to the last digit."
    obs = Observations([T], [decay_values()[:, None]])
    a = estimate(Decay(), obs)
    b = estimate(Decay(), obs, t0=1.0)
    assert a.params == b.params and a.stderr == b.stderr and a.dof == b.dof
    assert repr(Observations(obs.times, obs.values, t0=1.0)) == repr(obs)


def test_breakpoints_between_t0_and_the_first_observation():
    "A dose over [1, 2) from y(0) = 0, observed only from t = 2.5 on: the solve from t0 = 0 restarts at the breakpoints before the data."
    t = torch.linspace(2.5, 6.0, 8, **f64)
    with torch.no_grad():
        ys = simulate(Dose(0.7, 2.0), torch.zeros(2, 1, **f64), torch.cat([torch.zeros(1, **f64), t]), tstops=[1, 2], rtol=1e-11,
                      atol=1e-13)[:, 1:]
    e = estimate(Dose(), Observations.from_arrays(t, ys), t0=0.0, initial_conditions=torch.zeros(2, 1, **f64), tstops=[1.0, 2.0])
    assert e.success and abs(e.params["k"] - 0.7) < 1e-5 and abs(e.params["d"] - 2.0) < 1e-5 and e.n_data == 16
    r = fit(Dose(), SimODEData(t, ys), t0=0.0, y0=torch.zeros(1), tstops=[1.0, 2.0])
    assert r.success and abs(r.params["k"] - 0.7) < 1e-5 and abs(r.params["d"] - 2.0) < 1e-5 and r.n_data == 16


def test_predict_of_a_model_that_reads_t_from_a_t0_that_is_not_0():
    "The fitted curve of a time-dependent model is solved on the data's time axis from t0 = 0.5: it agrees with simulate."
    t = torch.linspace(2.5, 6.0, 8, **f64)
    with torch.no_grad():
        ys = simulate(Dose(0.7, 2.0), torch.zeros(1, 1, **f64), torch.cat([torch.full((1,), 0.5, **f64), t]), tstops=[1, 2],
                      rtol=1e-11, atol=1e-13)[:, 1:]
    e = estimate(Dose(), Observations.from_arrays(t, ys), t0=0.5, initial_conditions=torch.zeros(1, 1, **f64), tstops=[1.0, 2.0])
    ts, mean, _, _ = e.predict(0, ts=torch.tensor([0.5, 1.5, 3.0, 5.0], **f64))
    with torch.no_grad(): ref = simulate(Dose(e.params["k"], e.params["d"]), torch.zeros(1, 1, **f64), ts, tstops=[1, 2], rtol=1e-11,
                                         atol=1e-13)[0]
    assert torch.allclose(mean, ref, atol=1e-6), (mean, ref)
    t_res, r = e.residuals(0)
    assert torch.equal(t_res, t) and r.abs().max() < 1e-5


# ---------------------------------------------------------------- fit and fit_many
def test_fit_with_t0_and_known_initial_states():
    """fit: y0 at t0 = 0, every row an observation; the same estimate and error as estimate's, one degree of freedom fewer than a made-up
    row."""
    y = decay_values()
    r = fit(Decay(), SimODEData(T, y[None, :, None]), t0=0.0, y0=torch.ones(1))
    e = estimate(Decay(), Observations([T], [y[:, None]]), t0=0.0, initial_conditions=torch.ones(1, 1, **f64))
    assert r.success and r.n_data == 5 and math.isclose(r.redchi, r.chisqr/4)
    assert math.isclose(r.params["k"], e.params["k"], rel_tol=1e-7) and math.isclose(r.stderr["k"], e.stderr["k"], rel_tol=1e-5)
    fake = fit(Decay(), SimODEData(torch.cat([torch.zeros(1, **f64), T]), torch.cat([torch.ones(1, **f64), y])[None, :, None]))
    assert fake.n_data == 6 and math.isclose(fake.params["k"], r.params["k"], rel_tol=1e-7)
    assert math.isclose(r.stderr["k"]/fake.stderr["k"], math.sqrt(5/4), rel_tol=1e-5)
    lbfgs = fit(Decay(), SimODEData(T, y[None, :, None]), t0=0.0, y0=torch.ones(1), optimizer="lbfgs")  # the gradient path starts at t0
    assert math.isclose(lbfgs.params["k"], r.params["k"], rel_tol=1e-5)
    staged = fit(Decay(), SimODEData(T, y[None, :, None]), t0=0.0, y0=torch.ones(1), horizons=(0.3, 0.6))
    assert math.isclose(staged.params["k"], r.params["k"], rel_tol=1e-7)
    shared = fit(Decay(), SimODEData(T, y[None, :, None]), t0=torch.zeros(1), y0=torch.ones(1, 1))  # one per trajectory, all alike
    assert math.isclose(shared.params["k"], r.params["k"], rel_tol=1e-10)


def test_fit_many_with_t0():
    "fit_many: the same t0 and known initial state for every dataset; each row as fit gives it."
    data = [SimODEData(T, decay_values(k, seed=s)[None, :, None]) for s, k in enumerate((0.5, 0.7, 0.9))]
    tight = dict(rtol=1e-9, atol=1e-11)  # at the default rtol, solver noise stalls one of them (as it does without t0, on a made-up row)
    many = fit_many(Decay(), data, t0=0.0, y0=torch.ones(1), progress=False, **tight)
    assert all(s == "converged" for s in many.status)
    for i, d in enumerate(data):
        one = fit(Decay(), d, t0=0.0, y0=torch.ones(1), **tight)
        assert math.isclose(float(many.params[i, 0]), one.params["k"], rel_tol=1e-6)
        assert math.isclose(float(many.stderr[i, 0]), one.stderr["k"], rel_tol=1e-4)
    staged = fit_many(Decay(), data, t0=0.0, y0=torch.ones(1), horizons=(0.3,), progress=False, **tight)
    assert torch.allclose(staged.params, many.params, rtol=1e-6)


# ---------------------------------------------------------------- refusals
def test_a_t0_after_the_first_observation_is_refused():
    obs = Observations([T], [decay_values()[:, None]])
    with pytest.raises(ValueError, match=r"estimate: t0=2.0 comes after the first time point 1.0 of trajectory '0'"):
        estimate(Decay(), obs, t0=2.0)
    with pytest.raises(ValueError, match=r"Observations: t0=2.0 comes after the first time point 1.0"):
        Observations([T], [decay_values()[:, None]], t0=2.0)
    with pytest.raises(ValueError, match=r"fit: t0=2.0 comes after the data's first time 1.0"):
        fit(Decay(), SimODEData(T, decay_values()[None, :, None]), t0=2.0, y0=torch.ones(1))
    with pytest.raises(ValueError, match=r"fit_many \(dataset 0\): t0=2.0 comes after"):
        fit_many(Decay(), [SimODEData(T, decay_values()[None, :, None])], t0=2.0, y0=torch.ones(1), progress=False)


@pytest.mark.parametrize("bad, err, words", [(float("nan"), ValueError, "finite"), ("0", TypeError, "needs t0 as a number"),
                                             ([0.0, 0.0], ValueError, r"one per trajectory, \(1,\)"), (True, TypeError, "t0")])
def test_a_t0_that_is_no_time_is_refused(bad, err, words):
    with pytest.raises(err, match=words): estimate(Decay(), Observations([T], [decay_values()[:, None]]), t0=bad)


def test_first_observations_as_initial_states_need_t0_at_them():
    with pytest.raises(ValueError, match=r"initial_conditions='first' takes each trajectory's first observation .* not the state at t0"):
        estimate(Decay(), Observations([T], [decay_values()[:, None]]), t0=0.0, initial_conditions="first")


def test_fit_needs_known_initial_states_for_a_t0_before_the_data():
    data = SimODEData(T, torch.stack([decay_values(), decay_values(seed=1)])[..., None])
    with pytest.raises(ValueError, match=r"give the known initial states at t0 with y0="):
        fit(Decay(), data, t0=0.0)
    with pytest.raises(ValueError, match=r"one t0, got a different t0 per trajectory \[0.0, 0.5\]; .* estimate"):
        fit(Decay(), data, t0=[0.0, 0.5], y0=torch.ones(1))
    with pytest.raises(ValueError, match=r"y0 as the known initial states at t0, \(1,\) for every trajectory or \(2, 1\)"):
        fit(Decay(), data, t0=0.0, y0=torch.ones(3))


def test_ic_positive_with_known_initial_states_fits_the_parameters():
    "ic_positive=True with initial_conditions given as a tensor: nothing to keep positive, the fit runs (it raised a TypeError)."
    t = torch.linspace(0, 3, 20, dtype=torch.float64)
    obs = Observations.from_arrays(t, (2.0*torch.exp(-0.8*t))[None, :, None])
    r = estimate(FunctionODE(lambda t, y, k: -k*y, 1, k=0.5).double(), obs, ic_positive=True,
                 initial_conditions=torch.tensor([[2.0]], dtype=torch.float64))
    assert r.converged and abs(r.params["k"] - 0.8) < 1e-5
