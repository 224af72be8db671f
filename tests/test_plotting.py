import matplotlib.pyplot as plt
import pytest
import torch

from paramfittorchdemo import History, Lorenz, NeuralDiffEq, VDP, create_sim_dataset, plot_history, plot_phase_plane, plot_time_series


@pytest.fixture(scope="module")
def data():
    return create_sim_dataset(VDP(0.3), torch.linspace(0, 10, 10), sigma_noise=0.01, seed=0)


@pytest.mark.parametrize("fn", [plot_time_series, plot_phase_plane])
def test_returns_fig_ax_and_draws_on_given_ax(fn, data):
    fig, ax = fn(VDP(0.3), VDP(0.2), data[0])
    assert isinstance(fig, plt.Figure) and len(ax.lines) == 2 and len(ax.collections) == 1
    fig2, axs = plt.subplots(1, 3)
    f, a = fn(None, VDP(0.2), data, ax=axs[2])
    assert f is fig2 and a is axs[2] and len(a.lines) == 1 and not axs[0].lines


def test_time_series_content(data):
    ts, ys = data[0]
    fig, ax = plot_time_series(VDP(0.3), VDP(0.3), data[0], time_range=(0, 10), dyn_var_idx=1, title="t", color="red")
    true, fit = ax.lines
    assert fit.get_color() == "red" and fit.get_label() == "Fit Model"
    assert torch.allclose(torch.tensor(fit.get_ydata()), torch.tensor(true.get_ydata()), atol=1e-5)
    assert fit.get_xdata()[0] == 0 and fit.get_xdata()[-1] == pytest.approx(10)
    assert torch.allclose(torch.tensor(ax.collections[0].get_offsets()[:, 1], dtype=torch.float32), ys[:, 1])


def test_models_with_gradients_and_float64(data):
    m = VDP(0.3).double()
    plot_time_series(VDP(0.3), m, data[0])
    plot_phase_plane(None, NeuralDiffEq(2), data[0])


def test_three_dimensional_phase_plane():
    d = create_sim_dataset(Lorenz(), torch.arange(0, 1.0, 0.05), num_samples=2, initial_conditions_default=torch.tensor([1.0, 0.0, 0.0]))
    fig, ax = plot_phase_plane(Lorenz(), Lorenz(), d[0], dyn_var_idx=(0, 2), time_range=(0, 1))
    assert ax.get_xlabel() == "state 0" and ax.get_ylabel() == "state 2"


@pytest.mark.parametrize("fn,kw,match,exc", [
    (plot_time_series, dict(dyn_var_idx=2), "indices 0..1", ValueError),
    (plot_time_series, dict(dyn_var_idx=(0, 1)), "indices 0..1", ValueError),
    (plot_phase_plane, dict(dyn_var_idx=0), "pair of state indices", ValueError),
    (plot_phase_plane, dict(dyn_var_idx=(0, 5)), "indices 0..1", ValueError),
    (plot_time_series, dict(time_range=(5, 1)), "increasing", ValueError),
])
def test_bad_arguments(fn, kw, match, exc, data):
    with pytest.raises(exc, match=match):
        fn(None, VDP(0.3), data[0], **kw)


def test_bad_data():
    with pytest.raises(TypeError, match="one trajectory"):
        plot_time_series(None, VDP(0.3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\(time, state\)"):
        plot_time_series(None, VDP(0.3), (torch.linspace(0, 1, 3), torch.zeros(4, 2)))
    with pytest.raises(TypeError, match="no extra positional"):
        plot_phase_plane(None, VDP(0.3), (torch.linspace(0, 1, 3), torch.zeros(3, 2)), (0, 1), None, (0, 1), "t", "extra")


def test_plot_history():
    fig, ax = plot_history(History(loss=[3.0, 2.0, 1.0]))
    assert list(ax.lines[0].get_ydata()) == [3.0, 2.0, 1.0] and ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="empty history"):
        plot_history([])


# ---- Fits to measured data: plot_fit, plot_residuals, plot_traces, plot_profile ----

import math

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb

from paramfittorchdemo import plot_fit, plot_profile, plot_residuals, plot_traces


def damped(t):
    return torch.stack([torch.exp(-0.2 * t) * torch.sin(t), torch.exp(-0.2 * t) * torch.cos(t)], dim=-1)


@pytest.fixture
def fit_data():
    "Observations (12, 2) with one missing value, a fitted curve (50, 2) and a band of +-0.1."
    t_obs, t_fit = torch.linspace(0, 10, 12), torch.linspace(0, 10, 50)
    y_obs = damped(t_obs) + 0.05 * torch.randn(12, 2)
    y_obs[2, 1] = float("nan")
    y_fit = damped(t_fit)
    return t_obs, y_obs, t_fit, y_fit, y_fit - 0.1, y_fit + 0.1


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_fit_artists(fit_data):
    t_obs, y_obs, t_fit, y_fit, lo, hi = fit_data
    fig, ax = plot_fit(t_obs, y_obs, t_fit, y_fit, lo, hi, columns=["x", "v"], title="fit")
    assert isinstance(fig, plt.Figure) and isinstance(ax, plt.Axes) and ax.get_title() == "fit"
    fit_x, pts_x, fit_v, pts_v = ax.lines
    assert [l.get_label() for l in ax.lines] == ["x fit", "x", "v fit", "v"]
    assert fit_x.get_linestyle() == "-" and fit_x.get_marker() in ("None", None, "")
    assert pts_x.get_linestyle() == "None" and pts_x.get_marker() == "o"
    assert len(pts_x.get_xdata()) == 12 and len(pts_v.get_xdata()) == 11  # the NaN is skipped
    assert not np.isnan(pts_v.get_ydata()).any()
    assert len(ax.collections) == 2 and all(isinstance(c, PolyCollection) for c in ax.collections)
    assert ax.collections[0].get_alpha() == pytest.approx(0.2)
    assert legend_texts(ax) == ["x", "v", "95% band"]


def test_plot_fit_one_colour_per_quantity(fit_data):
    t_obs, y_obs, t_fit, y_fit, lo, hi = fit_data
    fig, ax = plot_fit(t_obs, y_obs, t_fit, y_fit, lo, hi)
    for j in range(2):
        line, pts, band = ax.lines[2 * j], ax.lines[2 * j + 1], ax.collections[j]
        rgb = to_rgb(line.get_color())
        assert to_rgb(pts.get_color()) == rgb
        assert tuple(band.get_facecolor()[0][:3]) == pytest.approx(rgb)
    assert ax.lines[0].get_color() != ax.lines[2].get_color()
    assert legend_texts(ax) == ["y[0]", "y[1]", "95% band"]  # default names


def test_plot_fit_without_band_and_with_other_inputs(fit_data):
    t_obs, y_obs, t_fit, y_fit, _, _ = fit_data
    y_fit = y_fit.clone().requires_grad_(True)  # fitted curves often carry gradients
    fig, ax = plot_fit(t_obs.numpy(), y_obs.double(), t_fit.tolist(), y_fit, columns=("x", "v"), band_label="ignored")
    assert len(ax.lines) == 4 and not ax.collections and legend_texts(ax) == ["x", "v"] and ax.get_title() == ""
    fig, ax = plot_fit([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [0.0, 2.0], [1.0, 3.0], columns="S")  # 1-D: one quantity
    assert len(ax.lines) == 2 and legend_texts(ax) == ["S"]


def test_plot_fit_draws_into_given_ax(fit_data):
    t_obs, y_obs, t_fit, y_fit, lo, hi = fit_data
    fig, axs = plt.subplots(1, 2)
    f, a = plot_fit(t_obs, y_obs, t_fit, y_fit, lo, hi, ax=axs[1])
    assert f is fig and a is axs[1] and not axs[0].lines and not axs[0].collections
    assert len(a.lines) == 4 and len(a.collections) == 2


def test_plot_fit_logy_with_zeros():
    t = torch.arange(5.0)
    counts = torch.tensor([[0.0, 1.0], [3.0, 0.0], [10.0, 4.0], [0.0, 9.0], [40.0, 20.0]])
    fit = torch.tensor([[0.0, 1.0], [3.0, 2.0], [10.0, 4.0], [20.0, 9.0], [40.0, 20.0]])
    fig, ax = plot_fit(t, counts, t, fit, torch.zeros(5, 2), fit + 5, columns=["S", "I"], logy=True)
    fig.canvas.draw()  # rendering must not fail either
    assert ax.get_yscale() == "log"
    assert list(ax.lines[1].get_xdata()) == [1.0, 2.0, 4.0] and list(ax.lines[3].get_xdata()) == [0.0, 2.0, 3.0, 4.0]
    lo, hi = ax.get_ylim()
    assert 0 < lo < 1 and np.isfinite(hi) and hi >= 40


@pytest.mark.parametrize("change,exc,match", [
    (dict(y_obs=torch.zeros(11, 2)), ValueError, r"y_obs of shape \(12, n_obs\) to match t_obs.*got \(11, 2\)"),
    (dict(y_obs=torch.zeros(12, 2, 1)), ValueError, r"y_obs of shape \(12, n_obs\).*got \(12, 2, 1\)"),
    (dict(t_obs=torch.zeros(12, 1)), ValueError, r"t_obs of shape \(time,\), got \(12, 1\)"),
    (dict(t_fit=torch.zeros(2, 25)), ValueError, r"t_fit of shape \(time_fit,\), got \(2, 25\)"),
    (dict(y_fit=torch.zeros(49, 2)), ValueError, r"y_fit of shape \(50, 2\).*got \(49, 2\)"),
    (dict(y_fit=torch.zeros(50, 3)), ValueError, r"y_fit of shape \(50, 2\).*n_obs = 2.*got \(50, 3\)"),
    (dict(lower=torch.zeros(50, 1)), ValueError, r"lower of shape \(50, 2\) to match y_fit, got \(50, 1\)"),
    (dict(upper=torch.zeros(2, 50)), ValueError, r"upper of shape \(50, 2\) to match y_fit, got \(2, 50\)"),
    (dict(lower=None), ValueError, "got only upper"),
    (dict(upper=None), ValueError, "got only lower"),
    (dict(columns=["x", "v", "w"]), ValueError, "3 column names"),
    (dict(y_obs="abc"), TypeError, "y_obs as numbers"),
    (dict(t_obs=None), TypeError, "t_obs as numbers.*got None"),
    (dict(y_obs=[[1.0, 2.0], [3.0]]), TypeError, "y_obs as numbers"),
])
def test_plot_fit_bad_arguments(fit_data, change, exc, match):
    t_obs, y_obs, t_fit, y_fit, lo, hi = fit_data
    kw = dict(t_obs=t_obs, y_obs=y_obs, t_fit=t_fit, y_fit=y_fit, lower=lo, upper=hi)
    with pytest.raises(exc, match=match):
        plot_fit(**{**kw, **change})
    assert not plt.get_fignums()  # nothing is drawn before the checks pass


def test_plot_residuals_artists_and_rms():
    t = torch.arange(4.0)
    r = torch.tensor([[1.0, 3.0], [-1.0, float("nan")], [1.0, -3.0], [-1.0, 3.0]])
    fig, ax = plot_residuals(t, r, columns=["S", "I"], title="res")
    assert isinstance(fig, plt.Figure) and ax.get_title() == "res"
    zero, s, i = ax.lines
    assert list(zero.get_ydata()) == [0, 0]
    assert s.get_linestyle() == "None" and s.get_marker() == "o"
    assert len(s.get_xdata()) == 4 and list(i.get_xdata()) == [0.0, 2.0, 3.0]  # NaN skipped
    assert legend_texts(ax) == ["S (RMS 1)", "I (RMS 3)"]
    assert "observed" in ax.get_ylabel()


def test_plot_residuals_standardized_and_given_ax():
    fig, axs = plt.subplots(2)
    f, a = plot_residuals(np.arange(5.0), np.random.default_rng(0).normal(size=(5, 1)), ax=axs[0], standardized=True)
    assert f is fig and a is axs[0] and not axs[1].lines
    assert len(a.lines) == 4  # zero, -2, +2 and the points
    assert sorted(l.get_ydata()[0] for l in a.lines[:3]) == [-2, 0, 2]
    assert a.get_ylabel() == "standardized residual" and legend_texts(a)[0].startswith("y[0] (RMS ")


def test_plot_residuals_several_trajectories():
    ts = [torch.linspace(0, 1, 3), torch.linspace(0, 2, 5)]
    rs = [torch.ones(3, 2), -2 * torch.ones(5, 2)]
    fig, ax = plot_residuals(ts, rs, columns=["a", "b"])
    assert len(ax.lines) == 3 and len(ax.lines[1].get_xdata()) == 8
    rms = math.sqrt((3 * 1 + 5 * 4) / 8)
    assert legend_texts(ax) == [f"a (RMS {rms:.3g})", f"b (RMS {rms:.3g})"]
    fig, ax = plot_residuals(torch.arange(3.0), [torch.zeros(3, 1), torch.ones(3, 1)])  # one grid shared by both
    assert len(ax.lines[1].get_xdata()) == 6 and legend_texts(ax) == [f"y[0] (RMS {math.sqrt(0.5):.3g})"]


def test_plot_residuals_all_missing_quantity():
    fig, ax = plot_residuals([0.0, 1.0], [[1.0, float("nan")], [1.0, float("nan")]])
    assert legend_texts(ax) == ["y[0] (RMS 1)", "y[1] (RMS nan)"] and len(ax.lines[2].get_xdata()) == 0


@pytest.mark.parametrize("t,r,exc,match", [
    (torch.arange(4.0), torch.zeros(3, 2), ValueError, r"residuals of shape \(4, n_obs\).*got \(3, 2\)"),
    (torch.zeros(4, 1), torch.zeros(4, 2), ValueError, r"t_obs of shape \(time,\), got \(4, 1\)"),
    ([torch.arange(3.0)] * 2, [torch.zeros(3, 2)] * 3, ValueError, "2 time grids in t_obs for 3 trajectories"),
    ([torch.arange(3.0), torch.arange(4.0)], [torch.zeros(3, 2), torch.zeros(3, 2)], ValueError,
     r"residuals\[1\] of shape \(4, 2\).*got \(3, 2\)"),
    ([torch.arange(3.0)] * 2, [torch.zeros(3, 2), torch.zeros(3, 1)], ValueError, r"residuals\[1\] of shape \(3, 2\).*first trajectory"),
    ([torch.arange(3.0), torch.zeros(3, 1)], [torch.zeros(3, 2)] * 2, ValueError, r"t_obs\[1\] of shape \(time,\)"),
    (torch.arange(2.0), "ab", TypeError, "residuals as numbers"),
])
def test_plot_residuals_bad_arguments(t, r, exc, match):
    with pytest.raises(exc, match=match):
        plot_residuals(t, r)


def test_plot_residuals_bad_columns():
    with pytest.raises(ValueError, match="1 column names"):
        plot_residuals(torch.arange(3.0), torch.zeros(3, 2), columns=["a"])


def test_plot_traces_relative_with_loss():
    trace = {"alpha": torch.tensor([2.0, 1.0, 0.5]), "beta": [1.0, 2.0, 4.0]}
    fig, ax = plot_traces(trace, loss=torch.tensor([10.0, 1.0, 0.1], dtype=torch.float64))
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2
    (lax,) = [a for a in fig.axes if a is not ax]
    assert list(ax.lines[0].get_ydata()) == [1, 1]  # reference line at 1
    assert list(ax.lines[1].get_ydata()) == [4.0, 2.0, 1.0] and list(ax.lines[2].get_ydata()) == [0.25, 0.5, 1.0]
    assert list(lax.lines[0].get_ydata()) == [10.0, 1.0, 0.1] and lax.get_yscale() == "log"
    assert legend_texts(ax) == ["alpha (final 0.5)", "beta (final 4)", "loss"]
    assert ax.get_xlabel() == "Iteration"


def test_plot_traces_raw_zero_final_and_negative_loss():
    fig, ax = plot_traces({"a": [0.0, 1.0, 2.0]}, relative=False)
    assert len(ax.lines) == 1 and list(ax.lines[0].get_ydata()) == [0.0, 1.0, 2.0] and len(fig.axes) == 1
    fig, ax = plot_traces({"a": [1.0, 0.0], "b": [1.0, 2.0]}, loss=[-1.0, -2.0])  # a ends at 0: drawn raw
    assert list(ax.lines[1].get_ydata()) == [1.0, 0.0] and "raw" in legend_texts(ax)[0]
    assert [a for a in fig.axes if a is not ax][0].get_yscale() == "linear"


def test_plot_traces_draws_into_given_ax():
    fig, axs = plt.subplots(1, 2)
    f, a = plot_traces({"a": [1.0, 2.0]}, loss=[2.0, 1.0], ax=axs[0])
    assert f is fig and a is axs[0] and not axs[1].lines and len(fig.axes) == 3


@pytest.mark.parametrize("trace,loss,exc,match", [
    ([1.0, 2.0], None, TypeError, "dict of parameter name"),
    ({}, None, ValueError, "empty trace"),
    ({"a": [1.0, 2.0], "b": [1.0]}, None, ValueError, r"trace\['b'\] has shape \(1,\) and trace\['a'\] has \(2,\)"),
    ({"a": [[1.0, 2.0]]}, None, ValueError, r"trace\['a'\] has shape \(1, 2\)"),
    ({"a": []}, None, ValueError, "non-zero length"),
    ({"a": [1.0, 2.0]}, [1.0, 2.0, 3.0], ValueError, r"loss of shape \(2,\).*got \(3,\)"),
    ({"a": [1.0, 2.0]}, [[1.0, 2.0]], ValueError, r"loss of shape \(iterations,\), got \(1, 2\)"),
])
def test_plot_traces_bad_arguments(trace, loss, exc, match):
    with pytest.raises(exc, match=match):
        plot_traces(trace, loss=loss)


def test_plot_profile_all_marks():
    values = torch.tensor([1.0, 1.5, 2.0, 0.5, 0.0])  # unsorted, as when profiling outwards from the estimate
    fig, ax = plot_profile(values, (values - 1.0) ** 2 * 4, "alpha", estimate=1.0, interval=(0.2, 1.8))
    assert isinstance(fig, plt.Figure) and ax.get_xlabel() == "alpha"
    prof, thr, est, lo, hi = ax.lines
    assert list(prof.get_xdata()) == [0.0, 0.5, 1.0, 1.5, 2.0] and list(prof.get_ydata()) == [4.0, 1.0, 0.0, 1.0, 4.0]
    assert list(thr.get_ydata()) == [3.841, 3.841]
    assert list(est.get_xdata()) == [1.0, 1.0] and list(lo.get_xdata()) == [0.2, 0.2] and list(hi.get_xdata()) == [1.8, 1.8]
    assert len(ax.patches) == 1
    assert legend_texts(ax) == ["profile", "threshold 3.84", "estimate 1", "interval [0.2, 1.8]"]


@pytest.mark.parametrize("interval,ends,text", [
    ((None, 1.5), [1.5], "interval (−∞, 1.5]"),
    ((0.5, None), [0.5], "interval [0.5, ∞)"),
    ((float("nan"), math.inf), [], "interval (−∞, ∞)"),
    ((None, None), [], "interval (−∞, ∞)"),
])
def test_plot_profile_open_intervals(interval, ends, text):
    fig, ax = plot_profile([0.0, 1.0, 2.0], [4.0, 0.0, 4.0], "b", threshold=None, interval=interval)
    assert [l.get_xdata()[0] for l in ax.lines[1:]] == ends  # no threshold line, no estimate line
    assert len(ax.patches) == 1 and legend_texts(ax)[-1] == text


def test_plot_profile_minimal_and_given_ax():
    fig, axs = plt.subplots(1, 2)
    f, a = plot_profile(np.array([0.0, 1.0]), [1.0, 0.0], "c", ax=axs[1])
    assert f is fig and a is axs[1] and not axs[0].lines
    assert len(a.lines) == 2 and not a.patches  # profile and the default threshold


@pytest.mark.parametrize("kw,exc,match", [
    (dict(values=[0.0, 1.0], loss=[1.0]), ValueError, r"got \(2,\) and \(1,\)"),
    (dict(values=[[0.0, 1.0]], loss=[1.0, 0.0]), ValueError, r"values of shape \(n,\), got \(1, 2\)"),
    (dict(values=[0.0, 1.0], loss=[[1.0, 0.0]]), ValueError, r"loss of shape \(n,\), got \(1, 2\)"),
    (dict(values=[], loss=[]), ValueError, "non-zero shape"),
    (dict(values=[0.0, 1.0], loss=[1.0, 0.0], interval=(1.0,)), ValueError, r"pair \(lo, hi\)"),
    (dict(values=[0.0, 1.0], loss=[1.0, 0.0], interval=(1.0, 0.0)), ValueError, "lo <= hi"),
    (dict(values="ab", loss=[1.0, 0.0]), TypeError, "values as numbers"),
])
def test_plot_profile_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        plot_profile(name="p", **kw)


@pytest.mark.parametrize("loss", [[0.048, 0.0481, 0.04806], [2.0*0.8**e + 0.05 for e in range(40)], [1e5, 3e4, 2.5e4]])
def test_history_labels_lie_inside_the_figure(loss, tmp_path):
    "A loss within one decade gets long tick labels (4.8e-2 style), which pushed the y-label off the left edge of a new figure."
    fig, ax = plot_history(loss)
    fig.savefig(tmp_path / "loss.png", dpi=100)  # as the command line saves it
    r = fig.canvas.get_renderer()
    for text in (ax.yaxis.label, ax.xaxis.label, ax.title):  # the tick labels lie between the y-label and the axes
        bb = text.get_window_extent(r)
        assert 0 <= bb.x0 and bb.x1 <= fig.bbox.x1 and 0 <= bb.y0 and bb.y1 <= fig.bbox.y1, (text.get_text(), bb, fig.bbox)
