"Progress bars of the slow calls: estimate, profile, multi-start fit, fit_many and estimate_many; on when asked, or when someone watches."
import io
import sys
import types

import pytest
import torch

from paramfittorchdemo import LotkaVolterra, Observations, Param, create_sim_dataset, estimate, fit
from paramfittorchdemo._checks import check_progress, interactive, progress_bar
from paramfittorchdemo.many import estimate_many, fit_many

TS = torch.arange(0, 6, 0.2)


@pytest.fixture(scope="module")
def lv():
    return [create_sim_dataset(LotkaVolterra(), TS, num_samples=2, sigma_noise=0.05, initial_conditions_default=torch.tensor([2.5, 2.5]),
                               sigma_initial_conditions=0.3, seed=s) for s in range(3)]


@pytest.fixture(scope="module")
def est(lv):
    return estimate(LotkaVolterra(1.4, 1.1, 3.2, 0.9), Observations.from_sim(lv[0]), params={"beta": Param(positive=True)}, progress=False)


def test_none_is_silent_under_pytest(lv, est, capsys):
    assert not interactive() and check_progress(None, "estimate") is False  # captured stderr is no terminal, and no notebook runs
    estimate(LotkaVolterra(1.4, 1.1, 3.2, 0.9), Observations.from_sim(lv[0]))
    est.profile("beta", n=5)
    fit(LotkaVolterra(1.4, 1.1, 3.2, 0.9), lv[0], starts=torch.tensor([[1.4, 1.1, 3.2, 0.9], [1.6, 0.9, 2.8, 1.1]]))
    fit_many(LotkaVolterra(), lv[:2])
    assert capsys.readouterr().err == ""


def test_estimate_and_profile_bars(lv, est, capsys):
    e = estimate(LotkaVolterra(1.4, 1.1, 3.2, 0.9), Observations.from_sim(lv[0]), progress=True)
    err = capsys.readouterr().err
    assert "estimate: " in err and "it [" in err and f"loss={e.history[-1]:.4g}" in err, err  # iterations counted, the loss shown
    est.profile("beta", n=5, progress=True)
    err = capsys.readouterr().err
    assert "profile beta: 100%" in err and "5/5" in err and "point" in err, err  # the profile's points


def test_multi_start_fit_bar(lv, capsys):
    starts = torch.tensor([[1.4, 1.1, 3.2, 0.9], [1.6, 0.9, 2.8, 1.1]])
    r = fit(LotkaVolterra(1.4, 1.1, 3.2, 0.9), lv[0], starts=starts, progress=True)
    err = capsys.readouterr().err
    assert "fit: " in err and f"loss={r.loss:.4g}" in err, err
    r1 = fit(LotkaVolterra(1.4, 1.1, 3.2, 0.9), lv[0], starts=starts)  # None: silent here, and the same numbers
    assert capsys.readouterr().err == "" and r1.params == pytest.approx(r.params, rel=1e-12)
    fit(LotkaVolterra(1.4, 1.1, 3.2, 0.9), lv[0], progress=True)  # one start, asked for
    assert "fit: " in capsys.readouterr().err


def test_many_bars_count_datasets(lv, capsys):
    fit_many(LotkaVolterra(), lv, chunk_size=2, progress=True)
    err = capsys.readouterr().err
    assert "fit_many: 100%" in err and "3/3" in err and "dataset" in err, err
    estimate_many(LotkaVolterra(), [Observations.from_sim(d) for d in lv[:2]], progress=True)
    err = capsys.readouterr().err
    assert "estimate_many: 100%" in err and "2/2" in err and "estimate: " not in err, err  # no bar of each estimate inside


@pytest.mark.parametrize("bad", ["yes", 1, 0.5, [True]])
def test_bad_progress_values(lv, est, bad):
    obs = Observations.from_sim(lv[0])
    for call, who in [(lambda: estimate(LotkaVolterra(), obs, progress=bad), "estimate"),
                      (lambda: est.profile("beta", n=5, progress=bad), "profile"),
                      (lambda: fit(LotkaVolterra(), lv[0], progress=bad), "fit"),
                      (lambda: fit_many(LotkaVolterra(), lv[:1], progress=bad), "fit_many"),
                      (lambda: estimate_many(LotkaVolterra(), [obs], progress=bad), "estimate_many")]:
        with pytest.raises(TypeError, match=rf"{who} needs progress as True, False or None .*got {type(bad).__name__}"): call()


def test_progress_bar_helper_writes_to_a_given_stream():
    buf = io.StringIO()
    with progress_bar(True, "demo", total=4, unit="point", file=buf) as bar:
        for _ in range(4): bar.update(1)
    assert "demo: 100%" in buf.getvalue() and "4/4" in buf.getvalue()
    buf = io.StringIO()
    with progress_bar(False, "demo", total=4, file=buf) as bar: bar.update(4); bar.set_postfix(loss=1.0)
    assert buf.getvalue() == ""


def test_interactive_in_a_terminal_and_in_a_notebook(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self): return True
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert interactive() and check_progress(None, "estimate") is True
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not interactive()
    ZMQInteractiveShell = type("ZMQInteractiveShell", (), {})  # what Jupyter and Colab kernels run (Colab's shell subclasses it)
    Shell = type("Shell", (ZMQInteractiveShell,), {})
    page, unattended = Shell(), Shell()
    page.kernel, unattended.kernel = types.SimpleNamespace(_allow_stdin=True), types.SimpleNamespace(_allow_stdin=False)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: page))
    assert interactive()  # a cell run from a notebook's page
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: unattended))
    assert not interactive()  # nbconvert --execute: its cells cannot ask for input, nobody watches
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))  # IPython imported, no kernel
    assert not interactive()
