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
