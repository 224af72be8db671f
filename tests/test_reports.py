"What the results say about themselves: the status line of a report, the steps its message counts, and initial states named by state."
import math
import re
import warnings

import pytest
import torch

from paramfittorchdemo import FunctionODE, LotkaVolterra, Observations, Param, create_sim_dataset, estimate, fit, load_lynx_hare, simulate
from paramfittorchdemo.lm import FitWarning, status_line

RATES = {k: Param(positive=True) for k in ("alpha", "beta", "delta", "gamma")}
STEPS = re.compile(r"\((?:(\d+) fits: )?(\d+) accepted and (\d+) rejected steps")


@pytest.fixture(scope="module")
def lynx_hare():
    "The README's fit of the shipped pelts: learned noise scales, so that it fits several times."
    return estimate(LotkaVolterra(0.5, 0.02, 1.0, 0.02), load_lynx_hare(), params=RATES, loss="log", ic_positive=True, weights="learn")


def _status(report: str) -> str:
    return next(line for line in report.splitlines() if line.strip().startswith("status")).split("=", 1)[1].strip()


def test_the_status_is_said_once(lynx_hare):
    for report, status, message in ((lynx_hare.fit_report(), lynx_hare.status, lynx_hare.message),):
        line = _status(report)
        assert not re.match(r"(\w+): \1", line), line  # not "converged: converged: ..."
        assert line == message and line.startswith(status + ":")
    assert status_line("max_iter", "budget exhausted: reached max_iter=3") == "max_iter: budget exhausted: reached max_iter=3"
    assert status_line("stalled", "stalled at the edge of where the solver succeeds") == "stalled at the edge of where the solver succeeds"
    assert status_line("solver_failed", "solver failed at the starting point: x") == "solver failed at the starting point: x"


def test_fit_report_says_the_status_once():
    data = create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 10.0, 0.1), 4, 0.1, initial_conditions_default=torch.tensor([2.5, 2.5]),
                              seed=0)
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), data)
    assert _status(r.fit_report()) == r.message and r.message.startswith("converged: ")
    acc, rej = (int(x) for x in STEPS.search(r.message).groups()[1:])
    assert acc + rej == r.iterations  # one start: every iteration is one accepted or rejected step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        short = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), data, max_iter=1, horizons=None)
    assert _status(short.fit_report()) == f"max_iter: {short.message}"


def test_the_steps_in_the_message_add_up_to_the_iterations(lynx_hare):
    "estimate's report counted 9 iterations next to '(1 accepted and 0 rejected steps)': the steps of the last of several fits only."
    est = lynx_hare
    fits, acc, rej = STEPS.search(est.message).groups()
    assert fits is not None and int(fits) > 1, est.message  # the plain fit, then refits with learned noise weights
    assert int(acc) + int(rej) == est.iterations, (est.iterations, est.message)
    assert f"the last {int(fits) - 1} fit" in est.message and "noise weights learned" in est.message
    assert f"{est.iterations} iterations" in est.fit_report()


def test_one_fit_keeps_the_plain_count():
    obs = Observations.from_sim(create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 8.0, 0.2), 3, 0.05,
                                                   initial_conditions_default=torch.tensor([2.5, 2.5]), seed=1))
    est = estimate(LotkaVolterra(1.6, 1.1, 2.7, 1.2), obs, initial_conditions="first", horizons=None)
    fits, acc, rej = STEPS.search(est.message).groups()
    assert fits is None and int(acc) + int(rej) == est.iterations, est.message


def test_initial_states_are_named_by_state(lynx_hare):
    est = lynx_hare
    names = ["y0[hudson_bay, hare]", "y0[hudson_bay, lynx]"]
    assert est.ic_names == names and list(est.initial_states) == names
    assert est.initial_states[names[0]] == est.initial_conditions[0, 0].item()
    report = est.fit_report()
    section = report.split("[[Initial states]]\n")[1].split("[[")[0].splitlines()
    assert [line.split(":")[0].strip() for line in section] == names
    assert all("+/-" in line for line in section)
    df = est.to_dataframe()
    assert list(df.index) == [*est.params, *names]
    assert df.loc[names[1], "value"] == est.initial_conditions[0, 1].item()
    assert df.loc[names[1], "stderr"] == pytest.approx(est.ic_stderr[0, 1].item())
    assert df.loc[names[1], "ci_lower"] < df.loc[names[1], "value"] < df.loc[names[1], "ci_upper"]
    assert not df.loc[names[0], "fixed"] and df.loc[names[0], "lower"] == 0.0  # ic_positive: fitted on a log scale
    d = est.to_dict()
    assert d["ic_names"] == names and list(d["initial_states"]) == names


def test_given_initial_states_are_named_and_marked_fixed():
    obs = Observations.from_sim(create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 6.0, 0.2), 2, 0.05,
                                                   initial_conditions_default=torch.tensor([2.5, 2.5]), seed=2))
    est = estimate(LotkaVolterra(1.6, 1.1, 2.7, 1.2), obs, initial_conditions="first")
    assert est.ic_names == ["y0[0, y0]", "y0[0, y1]", "y0[1, y0]", "y0[1, y1]"]  # the default column names y0, y1 name the states
    df = est.to_dataframe()
    assert bool(df.loc["y0[1, y1]", "fixed"]) and math.isnan(df.loc["y0[1, y1]", "stderr"])
    assert "[[Initial states]]" not in est.fit_report()  # nothing fitted, nothing to report


def sir():
    return FunctionODE(lambda t, y, b, g: torch.stack([-b*y[..., 0]*y[..., 1], b*y[..., 0]*y[..., 1] - g*y[..., 1]], -1), dim=2, b=2.0,
                       g=0.5)


def test_an_unobserved_state_takes_the_models_name_else_its_index():
    true = sir().double()
    t = torch.linspace(0, 8, 40, dtype=torch.float64)
    with torch.no_grad(): ys = simulate(true, torch.tensor([[0.99, 0.01]], dtype=torch.float64), t)[0]
    obs = Observations([t], [ys[:, 1:] + 0.001*torch.randn(40, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))],
                       ids=["town"], columns=["infected"])
    kw = dict(observe=[1], y0=torch.tensor([0.95, 0.02]), params={"b": Param(positive=True), "g": Param(positive=True)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        plain = estimate(sir(), obs, **kw)
        named = sir(); named.state_names = ("susceptible", "infective")
        with_names = estimate(named, obs, **kw)
    assert plain.ic_names == ["y0[town, 0]", "y0[town, infected]"]  # the column names the state it observes
    assert with_names.ic_names == ["y0[town, susceptible]", "y0[town, infected]"]  # the column first, then the model's names
    assert "y0[town, susceptible]:" in with_names.fit_report()


def test_a_failed_refit_over_growing_horizons_keeps_the_plain_fit(monkeypatch):
    "The refit's start, where the short horizons led, may have no solution over the whole span; that is no reason to fail the estimate."
    import paramfittorchdemo.estimation as E
    obs = Observations.from_sim(create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 6.0, 0.2), 2, 0.05,
                                                   initial_conditions_default=torch.tensor([2.5, 2.5]), seed=3))
    plain = estimate(LotkaVolterra(1.6, 1.1, 2.7, 1.2), obs, initial_conditions="first", horizons=None)
    monkeypatch.setattr(E, "_missed", lambda fit, res: True)  # the plain fit looks like a miss: refit over growing horizons
    blow_up = torch.tensor([50.0, -50.0, -50.0, -50.0], dtype=torch.float64)  # alpha, beta, delta, gamma: both populations explode
    monkeypatch.setattr(E, "_grow", lambda u, s, log, obs: blow_up.to(u).expand_as(u))  # ... from a start without a solution
    est = estimate(LotkaVolterra(1.6, 1.1, 2.7, 1.2), obs, initial_conditions="first")
    assert est.params == pytest.approx(plain.params, rel=1e-8) and est.converged
    assert "a refit over growing horizons led to parameters without a solution" in est.message


def test_an_estimate_built_by_hand_names_its_initial_states_by_position():
    from paramfittorchdemo import Estimate
    from paramfittorchdemo.solvers import SolveStats
    e = Estimate(params=dict(k=0.8), stderr=dict(k=0.01), ci=dict(k=(0.78, 0.82)), correlation=torch.ones(1, 1), free=["k"], fixed=[],
                 bounds=dict(k=(0.0, math.inf)), initial_conditions=torch.tensor([[1.0], [2.0]]), ic_stderr=torch.tensor([[0.1], [0.2]]),
                 sigma=dict(y=0.1), ssr=0.3, n_data=30, n_varys=3, converged=True, message="converged: by hand", iterations=2, seconds=0.1,
                 stats=SolveStats(), status="converged")
    assert e.ic_names == ["y0[0, 0]", "y0[1, 0]"] and e.initial_states == {"y0[0, 0]": 1.0, "y0[1, 0]": 2.0}
    assert "    y0[1, 0]: 2 +/- 0.2 (10.00%)" in e.fit_report().splitlines()  # the report no longer needs the fit's machinery
