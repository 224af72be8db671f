import numpy as np
import pytest
import torch

from paramfittorchdemo import Lorenz, LotkaVolterra, NeuralDiffEq, SimODEData, VDP, create_sim_dataset, simulate


def test_dataset_items_and_len():
    ts = torch.linspace(0, 1, 4)
    d = SimODEData([ts, ts, ts], [torch.zeros(4, 2)]*3, true_model=VDP(0.3))
    assert len(d) == 3 and d.dim == 2 and d.shared_ts
    t, y = d[2]
    assert t.shape == (4,) and y.shape == (4, 2)
    assert "3 trajectories" in repr(d) and "VDP(mu=0.3)" in repr(d)


def test_dataset_accepts_stacked_and_numpy():
    ts = torch.linspace(0, 1, 4)
    d = SimODEData(ts, torch.zeros(5, 4, 3))
    assert len(d) == 5 and d.dim == 3
    d = SimODEData(np.linspace(0, 1, 4), np.zeros((2, 4, 2)))
    assert d.tensors()[1].shape == (2, 4, 2)


def test_ragged_grids_are_kept_but_not_stacked():
    d = SimODEData([torch.linspace(0, 1, 4), torch.linspace(0, 2, 6)], [torch.zeros(4, 2), torch.zeros(6, 2)])
    assert not d.shared_ts
    assert "4-6 time points" in repr(d)
    with pytest.raises(ValueError, match="same time grid"):
        d.tensors()


@pytest.mark.parametrize("ts,values,match,exc", [
    ([torch.linspace(0, 1, 4)], [torch.zeros(4, 2)]*2, "1 time grids and 2 trajectories", ValueError),
    ([], [], "at least one trajectory", ValueError),
    ([torch.linspace(0, 1, 4)], [torch.zeros(3, 2)], r"values\[0\] of shape \(time, state\) = \(4, state\)", ValueError),
    ([torch.linspace(0, 1, 4)], [torch.zeros(4)], r"values\[0\] of shape", ValueError),
    ([torch.linspace(0, 1, 4)]*2, [torch.zeros(4, 2), torch.zeros(4, 3)], "same state dimension", ValueError),
    ([torch.tensor([0.0, 2.0, 1.0, 3.0])], [torch.zeros(4, 2)], r"ts\[0\]\[1\]=2 is followed by ts\[0\]\[2\]=1", ValueError),
    ([torch.tensor([0.0, 1.0, 1.0, 3.0])], [torch.zeros(4, 2)], "strictly increasing", ValueError),
    ([torch.tensor([0.0, 1.0, float("inf"), 3.0])], [torch.zeros(4, 2)], "NaN or inf", ValueError),
    ([torch.linspace(0, 1, 4)], [torch.tensor([[0., 0], [0, 0], [float("inf"), 0], [0, 0]])], "inf in values\\[0\\] at time index 2, state 0", ValueError),
    ([torch.linspace(0, 1, 4)], [torch.zeros(4, 2, dtype=torch.long)], "floating point", TypeError),
    ("0 1 2", [torch.zeros(3, 2)], "list of tensors", TypeError),
    ([[0.0, 1.0]], [torch.zeros(2, 2)], "torch.Tensor", TypeError),
])
def test_dataset_bad_input(ts, values, match, exc):
    with pytest.raises(exc, match=match):
        SimODEData(ts, values)


def test_dataset_true_model_dimension_must_match():
    with pytest.raises(ValueError, match="true_model Lorenz has 3"):
        SimODEData([torch.linspace(0, 1, 4)], [torch.zeros(4, 2)], true_model=Lorenz())


def test_sim_dataset_shapes_and_first_point():
    ts = torch.linspace(0, 5, 11)
    d = create_sim_dataset(VDP(0.3), ts, num_samples=7, sigma_noise=0.5, seed=3)
    assert len(d) == 7 and d.true_model is not None
    _, ys = d.tensors()
    assert ys.shape == (7, 11, 2)
    # the first observation is the exact initial condition: re-simulating from it without noise gives the clean path
    clean = simulate(VDP(0.3), ys[:, 0], ts).detach()
    assert torch.allclose(clean[:, 0], ys[:, 0])
    resid = (ys[:, 1:] - clean[:, 1:])
    assert 0.4 < resid.std().item() < 0.6  # the requested noise level


def test_sim_dataset_noise_free_is_exact():
    ts = torch.linspace(0, 2, 5)
    d = create_sim_dataset(LotkaVolterra(), ts, sigma_noise=0.0, initial_conditions_default=torch.tensor([2.0, 1.0]), seed=0)
    _, ys = d.tensors()
    assert torch.allclose(ys, simulate(LotkaVolterra(), ys[:, 0], ts).detach(), atol=1e-6)


def test_sim_dataset_reproducible():
    ts = torch.linspace(0, 2, 5)
    a = create_sim_dataset(VDP(0.3), ts, seed=11).tensors()[1]
    b = create_sim_dataset(VDP(0.3), ts, seed=11).tensors()[1]
    c = create_sim_dataset(VDP(0.3), ts, seed=12).tensors()[1]
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(create_sim_dataset(VDP(0.3), ts, generator=g1).tensors()[1],
                       create_sim_dataset(VDP(0.3), ts, generator=g2).tensors()[1])
    torch.manual_seed(1); d1 = create_sim_dataset(VDP(0.3), ts).tensors()[1]
    torch.manual_seed(1); d2 = create_sim_dataset(VDP(0.3), ts).tensors()[1]
    assert torch.equal(d1, d2)


@pytest.mark.parametrize("model,ic", [(Lorenz(), [1.0, 0.0, 0.0]), (NeuralDiffEq(4), [0.0]*4), (NeuralDiffEq(1), [1.0])])
def test_sim_dataset_any_dimension(model, ic):
    d = create_sim_dataset(model, torch.linspace(0, 1, 6), num_samples=3, initial_conditions_default=torch.tensor(ic))
    assert d.tensors()[1].shape == (3, 6, len(ic))


def test_sim_dataset_float64():
    d = create_sim_dataset(VDP(0.3).double(), torch.linspace(0, 1, 6, dtype=torch.float64), seed=0,
                           initial_conditions_default=torch.tensor([0.0, 0.0], dtype=torch.float64))
    assert d.tensors()[1].dtype == torch.float64


@pytest.mark.parametrize("kw,match,exc", [
    (dict(num_samples=0), "num_samples as a positive integer", ValueError),
    (dict(num_samples=2.0), "num_samples as a positive integer", ValueError),
    (dict(sigma_noise=-0.1), "sigma_noise as a finite number >= 0", ValueError),
    (dict(sigma_initial_conditions=float("nan")), "sigma_initial_conditions", ValueError),
    (dict(initial_conditions_default=torch.zeros(3)), r"\(2,\), got \(3,\)", ValueError),
    (dict(initial_conditions_default=torch.zeros(1, 2)), "1-D tensor", ValueError),
    (dict(ts=torch.linspace(1, 0, 5)), "strictly increasing", ValueError),
    (dict(method="rk45"), "unknown solver method", ValueError),
])
def test_sim_dataset_bad_input(kw, match, exc):
    args = dict(ts=torch.linspace(0, 1, 5))
    args.update(kw)
    with pytest.raises(exc, match=match):
        create_sim_dataset(VDP(0.3), **args)


def test_sim_dataset_needs_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        create_sim_dataset(lambda t, y: -y, torch.linspace(0, 1, 5))


def test_sim_dataset_diverging_model():
    class Blowup(torch.nn.Module):
        dim = 2
        def forward(self, t, y): return y**3
    with pytest.raises(ValueError, match="diverged"):
        create_sim_dataset(Blowup(), torch.linspace(0, 10, 5), initial_conditions_default=torch.tensor([5.0, 5.0]), method="rk4")
