"Known discontinuities: `tstops` split every solve at the breakpoints, each piece seen from its own side (issue 20, item 4)."
import math

import pytest
import torch
from torch import nn

from paramfittorchdemo import SimODEData, SolverError, estimate, fit, simulate
from paramfittorchdemo.solvers import SolveStats, check_tstops, integrate, solve_with_jacobian
from paramfittorchdemo.solvers.sensitivities import ParamSpec

f64 = dict(dtype=torch.float64)


def step_input(t, y): return -y + (t >= 1.0).to(y.dtype)  # u(t) = 1 from t = 1 on: y = 0 before, 1 - exp(-(t - 1)) after


def exact(ts): return torch.where(ts < 1, torch.zeros_like(ts), 1 - torch.exp(-(ts - 1)))


class Dose(nn.Module):
    "y' = -k y + d while 1 <= t < 2: a dose given over one time unit."
    def __init__(self, k=1.0, d=1.0, dtype=torch.float64):
        super().__init__()
        self.k, self.d = nn.Parameter(torch.tensor(k, dtype=dtype)), nn.Parameter(torch.tensor(d, dtype=dtype))

    def forward(self, t, y): return -self.k*y + self.d*((t >= 1.0) & (t < 2.0)).to(y.dtype)


class StiffDose(nn.Module):
    "A fast state that follows a switched input (rate k, stiff for large k), and a slow one fed by it."
    dim = 2
    def __init__(self, k=1e4, c=0.5):
        super().__init__()
        self.k, self.c = nn.Parameter(torch.tensor(k, **f64)), nn.Parameter(torch.tensor(c, **f64))

    def forward(self, t, y):
        u = (t >= 1.0).to(y.real.dtype)
        return torch.stack([-self.k*(y[..., 0] - u), self.c*(y[..., 0] - y[..., 1])], -1)


@pytest.mark.parametrize("method", ["dopri5", "auto", "rodas5p", "rodas4", "bosh3"])
def test_a_breakpoint_restarts_the_step_control(method):
    ts = torch.linspace(0, 3, 7, **f64)
    plain, split = SolveStats(), SolveStats()
    y = integrate(step_input, torch.zeros(1, 1, **f64), ts, method, rtol=1e-8, atol=1e-10, stats=plain)
    z = integrate(step_input, torch.zeros(1, 1, **f64), ts, method, rtol=1e-8, atol=1e-10, stats=split, tstops=[1.0])
    err = float((z[0, :, 0] - exact(ts)).abs().max())
    assert err < (1e-5 if method == "bosh3" else 1e-7), err  # (bosh3, order 3: its global error is far above its local tolerance)
    assert float((y[0, :, 0] - exact(ts)).abs().max()) < 1e-5  # hunting for the jump gets there too, at a price
    assert split.nfe < plain.nfe and split.solves == plain.solves == 1
    if method in ("dopri5", "auto", "rodas5p", "rodas4"): assert split.rejected < plain.rejected


def test_rk4_grid_restarts_at_the_breakpoint():
    ts = torch.tensor([0.0, 1.0, 1.7, 2.4], **f64)  # on the grid of step 0.07 from the breakpoint (rk4 interpolates linearly between)
    ys = integrate(step_input, torch.zeros(1, 1, **f64), ts, "rk4", step_size=0.07, tstops=[1.0])
    assert float((ys[0, :, 0] - exact(ts)).abs().max()) < 1e-6
    ys = integrate(step_input, torch.zeros(1, 1, **f64), ts, "rk4", step_size=0.07)  # 1.0 is no multiple of 0.07
    assert float((ys[0, :, 0] - exact(ts)).abs().max()) > 1e-3  # the jump inside a step costs the method its order


def test_each_piece_sees_the_input_from_its_own_side():
    seen = []
    def f(t, y):
        seen.append(float(t)); return step_input(t, y)
    ts = torch.tensor([0.0, 1.0, 2.0], **f64)
    ys = integrate(f, torch.zeros(1, 1, **f64), ts, "dopri5", rtol=1e-10, atol=1e-12, tstops=[1.0])
    assert 1.0 not in seen and max(t for t in seen if t < 1.0) == math.nextafter(1.0, 0.0)  # the first piece's end, from below
    assert min(t for t in seen if t > 1.0) == math.nextafter(1.0, 2.0)  # the second piece's start, from above
    assert float(ys[0, 1, 0]) == 0.0 and abs(float(ys[0, 2, 0]) - (1 - math.exp(-1))) < 1e-9


def test_float32_breakpoints_are_one_sided_in_float32():
    ts = torch.linspace(0, 3, 7)
    ys = simulate(Dose(1.0, 1.0, torch.float32), torch.zeros(2, 1), ts, method="dopri5", tstops=[1.0, 2.0])
    assert ys.dtype == torch.float32 and float(ys[0, 2, 0]) == 0.0  # y(1) = 0: nothing of the dose leaked into [0, 1]


def test_outputs_on_and_around_the_breakpoints():
    ts = torch.tensor([0.0, 0.5, 1.0, 1.0 + 1e-9, 1.5, 2.0, 4.0], **f64)
    stops = [2.0, 1.0, 1.0, 7.0, -1.0]  # in any order, repeated; those outside the span are ignored
    ys = simulate(Dose(), torch.zeros(1, 1, **f64), ts, tstops=stops, rtol=1e-10, atol=1e-12)
    ref = torch.where(ts < 1, 0*ts, torch.where(ts <= 2, 1 - torch.exp(-(ts - 1)), (1 - math.exp(-1))*torch.exp(-(ts - 2))))
    assert ys.shape == (1, 7, 1) and float((ys[0, :, 0] - ref).abs().max()) < 1e-9


def test_the_step_budget_is_the_whole_solves():
    ts = torch.linspace(0, 3, 4, **f64)
    full = SolveStats()
    integrate(step_input, torch.zeros(1, 1, **f64), ts, "dopri5", rtol=1e-10, atol=1e-12, stats=full, tstops=[1.0, 2.0])
    with pytest.raises(SolverError, match="budget"):  # a budget that each piece alone would meet, but not all three
        integrate(step_input, torch.zeros(1, 1, **f64), ts, "dopri5", rtol=1e-10, atol=1e-12, tstops=[1.0, 2.0],
                  max_steps=full.steps + full.rejected - 5)


def test_groups_keep_their_own_fate_across_pieces():
    y0 = torch.tensor([[0.0], [float("nan")]], **f64)
    st = SolveStats()
    ys = integrate(step_input, y0, torch.linspace(0, 3, 4, **f64), "dopri5", groups=2, stats=st, tstops=[1.0])
    assert st.alive == [True, False] and torch.isfinite(ys[0]).all() and torch.isnan(ys[1]).all()


def test_a_model_may_carry_its_breakpoints():
    m = Dose()
    m.tstops = [1.0, 2.0]
    ts = torch.linspace(0, 4, 9, **f64)
    assert torch.equal(simulate(m, torch.zeros(1, 1, **f64), ts, method="dopri5"),
                       simulate(Dose(), torch.zeros(1, 1, **f64), ts, method="dopri5", tstops=[1.0, 2.0]))
    assert not torch.equal(simulate(m, torch.zeros(1, 1, **f64), ts, method="dopri5", tstops=[]),  # an explicit [] means none
                           simulate(m, torch.zeros(1, 1, **f64), ts, method="dopri5"))


@pytest.mark.parametrize("bad, err, words", [("1.0", TypeError, "sequence of times"), (1.0, TypeError, "sequence of times"),
                                             ([1.0, float("nan")], ValueError, "finite"), ([[1.0]], ValueError, "1-d"),
                                             (["a"], TypeError, "real numbers")])
def test_bad_tstops_are_refused(bad, err, words):
    with pytest.raises(err, match=words): check_tstops(bad, "simulate")
    with pytest.raises(err, match="simulate: tstops"):
        simulate(Dose(), torch.zeros(1, 1, **f64), torch.linspace(0, 3, 4, **f64), tstops=bad)
    with pytest.raises(err, match="fit: tstops"):
        fit(Dose(), SimODEData(torch.linspace(0, 3, 4, **f64), torch.zeros(1, 4, 1, **f64)), tstops=bad)


def _dose_data():
    ts = torch.linspace(0, 4, 41, **f64)
    with torch.no_grad(): ys = simulate(Dose(0.7, 2.0), torch.zeros(3, 1, **f64), ts, tstops=[1, 2], rtol=1e-11, atol=1e-13)
    return SimODEData(ts, ys)


@pytest.mark.parametrize("optimizer", ["lm", "lbfgs"])
def test_fit_with_breakpoints_converges_to_the_truth(optimizer):
    r = fit(Dose(), _dose_data(), optimizer=optimizer, tstops=[1.0, 2.0])
    assert r.success and abs(r.params["k"] - 0.7) < 1e-4 and abs(r.params["d"] - 2.0) < 1e-4
    assert r.stats.solves < 40  # no hunting for the jumps


def test_estimate_with_breakpoints_converges_with_tight_error_bars():
    e = estimate(Dose(), _dose_data(), initial_conditions="first", tstops=[1.0, 2.0])
    assert e.success and abs(e.params["k"] - 0.7) < 1e-6 and 0 < e.stderr["k"] < 1e-4


def test_sensitivities_through_a_stiff_switched_solve():
    "method='auto' hands the stiff pieces to the implicit method; the complex-step Jacobian agrees with central differences."
    m, spec = StiffDose(), None
    spec = ParamSpec.of(m)
    theta = spec.vector(m)[None]
    ts, y0 = torch.linspace(0, 3, 13, **f64), torch.zeros(1, 2, **f64)
    st = SolveStats()
    pred, J, alive = solve_with_jacobian(m, spec, theta, y0, ts, "auto", rtol=1e-9, atol=1e-11, stats=st, tstops=[1.0])
    pred_c, J_c, _ = solve_with_jacobian(m, spec, theta, y0, ts, "rodas5p", rtol=1e-9, atol=1e-11, mode="central", tstops=[1.0])
    assert bool(alive.all()) and "rodas5p" in st.switch
    assert torch.allclose(pred, pred_c, atol=1e-7)
    assert torch.allclose(J, J_c, rtol=1e-4, atol=1e-7)
