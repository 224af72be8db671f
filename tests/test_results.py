"Result objects: to_dict / to_dataframe / to_json, the lmfit- and scipy-style names, fit's standard errors, and the `params` rule."
import json
import math
import warnings

import pandas as pd
import pytest
import torch

from paramfittorchdemo import FunctionODE, History, LotkaVolterra, create_sim_dataset
from paramfittorchdemo._checks import from_plain, to_plain, write_json
from paramfittorchdemo.estimation import Estimate, Param, estimate
from paramfittorchdemo.fitting import FitResult, fit
from paramfittorchdemo.lm import FitWarning
from paramfittorchdemo.many import ManyFits, fit_many


@pytest.fixture(scope="module")
def lv_data():
    return create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 10.0, 0.1), num_samples=10, sigma_noise=0.1,
                              initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)


@pytest.fixture(scope="module")
def lm_fit(lv_data):
    return fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data)


def decay(k=0.7, c=1.0):  # c does not enter the right-hand side: the data cannot determine it
    return FunctionODE(lambda t, y, k, c: -k*y, dim=1, k=k, c=c)


def test_plain_values_survive_json():
    d = dict(a=torch.tensor([1.0, math.inf, -math.inf]), b=math.nan, c=(1, "x"), d=None, e=torch.tensor(2))
    text = write_json(d)
    assert "NaN" in text and "Infinity" in text and json.loads(text)["a"] == [1.0, "Infinity", "-Infinity"]
    back = from_plain(json.loads(text))
    assert back["a"] == [1.0, math.inf, -math.inf] and math.isnan(back["b"]) and back["c"] == [1, "x"] and back["e"] == 2
    assert to_plain(float("nan")) == "NaN"
    with pytest.raises(TypeError, match="path as a file path"): write_json(d, 3.5)


def test_fit_standard_errors_agree_with_estimate(lv_data, lm_fit):
    r = lm_fit
    est = estimate(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, initial_conditions="first")
    assert r.converged and set(r.stderr) == set(est.stderr)
    for k in est.stderr:
        assert r.stderr[k] == pytest.approx(est.stderr[k], rel=0.03)
        assert r.ci[k][0] < r.params[k] < r.ci[k][1]
    assert r.chisqr == pytest.approx(est.chisqr, rel=1e-6) and r.redchi == pytest.approx(est.redchi, rel=1e-6)
    assert r.n_data == est.n_data == 2000 and r.not_identifiable == []


def test_fit_names_a_parameter_the_data_do_not_determine():
    data = create_sim_dataset(decay(0.5), torch.linspace(0, 5, 20), num_samples=3, sigma_noise=0.01,
                              initial_conditions_default=torch.tensor([1.0]), seed=0)
    with pytest.warns(FitWarning, match="c does not affect the fit"): r = fit(decay(), data)
    assert r.stderr["c"] == math.inf and math.isfinite(r.stderr["k"]) and r.not_identifiable == ["c"]
    assert "not identifiable" in r.fit_report() and r.identifiability == ["c does not affect the fit"]
    assert json.loads(r.to_json())["stderr"]["c"] == "Infinity"


def test_no_standard_errors_without_lm_or_convergence(lv_data):
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, optimizer="lbfgs", max_iter=5)
    assert r.stderr is None and r.ci is None and "lbfgs gives none" in r.fit_report()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        short = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, max_iter=1, horizons=None)
    assert not short.converged and short.stderr is None
    assert short.to_dataframe()["stderr"].isna().all()


def test_fit_result_names_and_export(lm_fit, tmp_path):
    r = lm_fit
    assert r.success and r.names == ["alpha", "beta", "delta", "gamma"] and r.x.tolist() == list(r.params.values())
    assert r.nfev == r.stats.nfe > 0 and r.chisqr == pytest.approx(r.loss*r.n_data)
    assert r.redchi == pytest.approx(r.chisqr/(r.n_data - 4))
    d = r.to_dict()
    assert d["x"] == r.x.tolist() and d["stats"]["nfe"] == r.nfev and d["status"] == "converged" and d["nfev"] == r.nfev
    text = r.to_json(tmp_path/"r.json")
    assert json.loads((tmp_path/"r.json").read_text()) == json.loads(text) == json.loads(json.dumps(d))
    df = r.to_dataframe()
    assert list(df.index) == r.names and df.loc["alpha", "stderr"] == r.stderr["alpha"]
    assert "[[Variables]]" in r.fit_report() and "chi-square" in r.fit_report()


def test_estimate_names_and_export(lv_data, tmp_path):
    est = estimate(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, initial_conditions="first", params={"beta": Param(1.0, fixed=True)})
    assert est.names == ["alpha", "delta", "gamma"] and est.x.tolist() == [est.params[n] for n in est.names]
    assert est.nfev == est.stats.nfe and est.chisqr == est.ssr and est.redchi == pytest.approx(est.ssr/(est.n_data - 3))
    assert est.fit_report() == est.report() and "[[Variables]]" in est.fit_report()
    back = from_plain(json.loads(est.to_json(tmp_path/"e.json")))
    assert back["params"] == est.params and back["fixed"] == ["beta"] and back["x"] == est.x.tolist()
    assert back["covariance"] == est.covariance.tolist() and back["bounds"]["alpha"] == [-math.inf, math.inf]
    assert "_res" not in back and back["ic_stderr"] is None
    df = est.to_dataframe()
    assert bool(df.loc["beta", "fixed"]) and math.isnan(df.loc["beta", "stderr"]) and df.loc["alpha", "value"] == est.params["alpha"]


def test_history_and_many_export(tmp_path):
    h = History(loss=[2.0, 1.0, math.nan], params=dict(k=[0.1, 0.2, 0.3]), seconds=1.5, stop_reason="completed")
    d = h.to_dict()
    assert d["loss"] == [2.0, 1.0, "NaN"] and d["epochs"] == 3 and d["params"] == dict(k=[0.1, 0.2, 0.3])
    assert json.loads(h.to_json(tmp_path/"h.json")) == d and (tmp_path/"h.json").is_file()
    df = h.to_dataframe()
    assert list(df.columns) == ["epoch", "loss", "k"] and len(df) == 3
    datasets = [create_sim_dataset(LotkaVolterra(), torch.linspace(0, 5, 21), 2, 0.05, initial_conditions_default=torch.tensor([2.5, 2.5]),
                                   seed=s) for s in range(2)]
    many = fit_many(LotkaVolterra(), datasets)
    assert isinstance(many, ManyFits) and from_plain(json.loads(many.to_json())) == from_plain(to_plain(many.to_dict()))


def test_a_bare_number_is_a_starting_value_and_param_fixed_holds_it(lv_data):
    free = estimate(LotkaVolterra(), lv_data, initial_conditions="first", params={"alpha": 1.3})
    assert "alpha" in free.free and free.params["alpha"] != 1.3 and abs(free.params["alpha"] - 1.5) < 0.05
    held = estimate(LotkaVolterra(), lv_data, initial_conditions="first", params={"alpha": Param(1.3, fixed=True)})
    assert held.fixed == ["alpha"] and held.params["alpha"] == 1.3
    many = fit_many(LotkaVolterra(), [lv_data], params={"beta": 0.8})
    assert "beta" in many.names and abs(float(many.params[0, many.names.index("beta")]) - 1.0) < 0.05
    with pytest.raises(TypeError, match=r"Param\(value, fixed=True\)"): estimate(LotkaVolterra(), lv_data, params={"alpha": "x"})


def test_pandas_missing_gives_a_clear_error(monkeypatch, lm_fit):
    import sys
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="FitResult.to_dataframe needs pandas"): lm_fit.to_dataframe()
    assert isinstance(lm_fit, FitResult) and Estimate.to_dataframe and pd


def test_intervals_are_read_lazily_and_behave_like_a_dict():
    "fit's intervals compute the t quantile (scipy) when first read; they compare, serialise and pickle as the dict they stand for."
    import json
    import pickle
    import subprocess
    import sys
    code = ("import sys, math, torch, paramfittorchdemo as pf\nfrom paramfittorchdemo.fitting import fit\n"
            "ts = torch.linspace(0, 3, 16); y = torch.stack([2*torch.exp(-0.7*ts), torch.exp(-0.7*ts)], -1)\n"
            "d = pf.SimODEData(ts, [y[:, :1], y[:, 1:]])\n"  # no simulation: nothing has imported scipy yet
            "m = pf.FunctionODE(lambda t, y, k: -k*y, dim=1, k=0.5)\n"
            "r = fit(m, d)\nbefore = 'scipy.special' in sys.modules\n"
            "lo, hi = r.ci['k']\nprint(r.status, before, 'scipy.special' in sys.modules, lo < r.params['k'] < hi)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["converged", "False", "True", "True"], out.stdout
    from paramfittorchdemo.lm import StudentIntervals, t_quantile
    ci = StudentIntervals({"a": 1.0, "b": 2.0}, {"a": 0.1, "b": math.inf}, dof=50)
    tq = t_quantile(0.975, 50)
    want = {"a": (1.0 - 0.1*tq, 1.0 + 0.1*tq), "b": (-math.inf, math.inf)}
    assert ci == want and dict(ci) == want and list(ci) == ["a", "b"] and len(ci) == 2
    assert pickle.loads(pickle.dumps(ci)) == want
    from paramfittorchdemo._checks import to_plain
    assert json.loads(json.dumps(to_plain(ci))) == {"a": list(want["a"]), "b": ["-Infinity", "Infinity"]}
