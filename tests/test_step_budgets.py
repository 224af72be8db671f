"Step budgets per method: every adaptive method estimate offers fits over a long span at a tight tolerance, and records its steps."
import pytest
import torch

from paramfittorchdemo import FunctionODE, estimate, fit, SimODEData
from paramfittorchdemo.observations import Observations
from paramfittorchdemo.solvers import ADAPTIVE_METHODS, SolveStats, integrate

f64 = dict(dtype=torch.float64)


RTOL = dict(fehlberg2=1e-6, adaptive_heun=1e-5)  # low-order methods: a looser rtol (the span still takes them many steps)


def chain(t, y, k1, k2): return torch.stack([-k1*y[..., 0], k1*y[..., 0] - k2*y[..., 1]], -1)


@pytest.fixture(scope="module")
def data():
    "A -> B -> C over [0, 500] (the budget derived from the first solves must cover the whole span), 1e-3 noise."
    ts = torch.linspace(0, 500, 60, **f64)
    with torch.no_grad():
        ys = integrate(FunctionODE(chain, 2, k1=0.02, k2=0.005).double(), torch.tensor([[1.0, 0.0]], **f64), ts, "dopri5", rtol=1e-11,
                       atol=1e-13)
    return ts, ys + 1e-3*torch.randn(ys.shape, generator=torch.Generator().manual_seed(0), **f64)


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_every_adaptive_method_records_its_steps(method):
    st = SolveStats()
    with torch.no_grad():
        integrate(FunctionODE(chain, 2, k1=0.02, k2=0.005).double(), torch.tensor([[1.0, 0.0]], **f64), torch.linspace(0, 500, 6, **f64),
                  method, rtol=RTOL.get(method, 1e-8), atol=1e-10, stats=st)
    assert st.steps > 0 and st.nfe >= st.steps  # the step budgets of fit and estimate grow from these counts


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_estimate_with_every_adaptive_method_at_a_tight_tolerance(method, data):
    ts, ys = data
    rtol = RTOL.get(method, 1e-9)
    r = estimate(FunctionODE(chain, 2, k1=0.03, k2=0.004).double(), Observations.from_arrays(ts, ys), method=method, rtol=rtol,
                 atol=rtol*1e-2)
    assert r.status == "converged", r.message
    assert "budget" not in r.message and r.stats.steps > 0
    assert abs(r.params["k1"]/0.02 - 1) < 0.02 and abs(r.params["k2"]/0.005 - 1) < 0.02


@pytest.mark.parametrize("method", ["dopri8", "bosh3"])
def test_fit_with_torchdiffeqs_adaptive_methods_at_a_tight_tolerance(method, data):
    ts, ys = data
    y = torch.cat([torch.tensor([[1.0, 0.0]], **f64), ys[0, 1:]])
    rtol = RTOL.get(method, 1e-9)
    r = fit(FunctionODE(chain, 2, k1=0.03, k2=0.004).double(), SimODEData(ts, [y]), method=method, rtol=rtol, atol=rtol*1e-2)
    assert r.converged and "budget" not in r.message, r.message
    assert abs(r.params["k1"]/0.02 - 1) < 0.02 and abs(r.params["k2"]/0.005 - 1) < 0.02
