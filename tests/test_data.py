import numpy as np
import pytest
import torch

from paramfittorchdemo import Lorenz, LotkaVolterra, NeuralDiffEq, SimODEData, VDP, create_sim_dataset, simulate
from paramfittorchdemo.solvers import SolverError


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
    ([torch.linspace(0, 1, 4)], [torch.tensor([[0., 0], [0, 0], [float("inf"), 0], [0, 0]])],
     "inf in values\\[0\\] at time index 2, state 0", ValueError),
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
    with pytest.raises(TypeError, match="true_model as the torch.nn.Module that made the data, or None, got str 'VDP'"):
        SimODEData([torch.linspace(0, 1, 4)], [torch.zeros(4, 2)], true_model="VDP")


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


# ---------------------------------------------------------------- data that are no real numbers are refused, not converted

DATES = np.array(["2001-01-01", "2001-01-02", "2001-01-05"], dtype="datetime64[D]")

NOT_REAL = [  # (array or tensor, what the message says it holds)
    (DATES, r"got dates \(dtype datetime64\[D\]\); convert them to elapsed time .*np\.timedelta64\(1, \"D\"\)"),
    (DATES - DATES[0], r"got time spans \(dtype timedelta64\[D\]\); .*t / np\.timedelta64\(1, \"D\"\)"),
    (np.arange(3.0) + 0j, r"got complex numbers \(dtype complex128\); .*real states"),
    (torch.arange(3.0) + 0j, r"got complex numbers \(dtype torch\.complex64\)"),
    (np.array([False, True, True]), r"got booleans \(dtype bool\); convert it explicitly if 0 and 1 are meant"),
    (torch.tensor([False, True, True]), r"got booleans \(dtype torch\.bool\)"),
    (np.array(["0", "1", "2"]), r"got strings \(dtype <U1\); convert it to numbers first"),
    (np.array([0.0, 1.0, "2"], dtype=object), r"got an object array holding strings, e.g. .2. at flat index 2"),
]


@pytest.mark.parametrize("ts,match", NOT_REAL)
def test_dataset_refuses_time_points_that_are_no_real_numbers(ts, match):
    with pytest.raises(TypeError, match=r"SimODEData needs ts as real numbers, " + match):
        SimODEData(ts, np.zeros((2, 3, 2)))
    with pytest.raises(TypeError, match=r"SimODEData needs ts\[0\] as real numbers, " + match):
        SimODEData([ts], [np.zeros((3, 2))])


@pytest.mark.parametrize("values,match", [
    (np.zeros((1, 3, 2)) + 0j, "values as real numbers, got complex numbers"),
    (torch.zeros(1, 3, 2, dtype=torch.complex128), "values as real numbers, got complex numbers"),
    (np.zeros((1, 3, 2), dtype=bool), "values as real numbers, got booleans"),
    ([np.zeros((3, 2)) + 1j], r"values\[0\] as real numbers, got complex numbers"),
    ([torch.ones(3, 2, dtype=torch.bool)], r"values\[0\] as real numbers, got booleans"),
])
def test_dataset_refuses_values_that_are_no_real_numbers(values, match):
    with pytest.raises(TypeError, match=match):
        SimODEData(torch.linspace(0, 1, 3), values)


def test_dataset_accepts_object_arrays_of_numbers():
    d = SimODEData(np.array([0.0, 1, 2], dtype=object), np.ones((1, 3, 2), dtype=object))
    assert d.tensors()[1].dtype == torch.float64 and d.tensors()[0].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("ts,match", NOT_REAL)
def test_sim_dataset_refuses_time_points_that_are_no_real_numbers(ts, match):
    with pytest.raises(TypeError, match=r"create_sim_dataset needs ts as real numbers, " + match):
        create_sim_dataset(VDP(0.3), ts)


@pytest.mark.parametrize("ic,exc,match", [
    (np.array([1 + 1j, 0]), TypeError, r"initial_conditions_default as real numbers, got complex numbers \(dtype complex128\)"),
    (torch.tensor([1 + 1j, 0]), TypeError, r"initial_conditions_default as real numbers, got complex numbers"),
    ([True, False], TypeError, r"initial_conditions_default as real numbers, got booleans"),
    (torch.tensor([True, False]), TypeError, r"initial_conditions_default as real numbers, got booleans"),
    (["1", "0"], TypeError, r"initial_conditions_default as real numbers, got strings"),
    (DATES[:2], TypeError, r"initial_conditions_default as real numbers, got dates"),
    (None, TypeError, r"initial_conditions_default as a 1-D tensor \(state,\), got NoneType"),
    ("1,0", TypeError, r"initial_conditions_default as a 1-D tensor \(state,\), got str"),
    ([[1.0], [0.0, 1.0]], ValueError, r"initial_conditions_default as a 1-D tensor \(state,\), got a list it cannot turn into one"),
])
def test_sim_dataset_refuses_bad_initial_conditions(ic, exc, match):
    with pytest.raises(exc, match=match):
        create_sim_dataset(VDP(0.3), torch.linspace(0, 1, 5), initial_conditions_default=ic)


def test_sim_dataset_initial_conditions_as_list_or_array():
    for ic in ([1, 0], (1.0, 0.0), np.array([1.0, 0.0])):
        d = create_sim_dataset(VDP(0.3), torch.linspace(0, 1, 5), num_samples=2, initial_conditions_default=ic, seed=0)
        assert d.tensors()[1].dtype == torch.float32


# ---------------------------------------------------------------- seed, generator and counts

def test_sim_dataset_accepts_numpy_integers():
    ts = torch.linspace(0, 1, 5)
    d = create_sim_dataset(VDP(0.3), ts, num_samples=np.int64(3), seed=np.int64(4))
    assert len(d) == 3
    assert torch.equal(d.tensors()[1], create_sim_dataset(VDP(0.3), ts, num_samples=3, seed=4).tensors()[1])


@pytest.mark.parametrize("kw,exc,match", [
    (dict(seed=1.5), TypeError, "seed as an integer, got float 1.5"),
    (dict(seed="1"), TypeError, "seed as an integer, got str"),
    (dict(seed=True), TypeError, "seed as an integer, got bool"),
    (dict(seed=2**70), ValueError, r"seed between -2\*\*63 and 2\*\*64 - 1"),
    (dict(generator=3), TypeError, "generator as a torch.Generator, got int"),
    (dict(num_samples=torch.tensor(3)), ValueError, "num_samples as a positive integer"),
])
def test_sim_dataset_bad_seed_and_generator(kw, exc, match):
    with pytest.raises(exc, match=match):
        create_sim_dataset(VDP(0.3), torch.linspace(0, 1, 5), **kw)


# ---------------------------------------------------------------- a model that cannot be simulated is named

class Squared(torch.nn.Module):
    "dy/dt = y^2: from y0 = 1 the solution 1/(1 - t) blows up at t = 1."
    dim = 1
    def forward(self, t, y): return y**2


def test_sim_dataset_solver_failure_names_the_model():
    model = Squared()
    with pytest.raises(SolverError) as e:
        create_sim_dataset(model, torch.linspace(0, 2, 5), initial_conditions_default=torch.tensor([1.0]),
                           sigma_initial_conditions=0.0, num_samples=2)
    msg = str(e.value)
    for part in ["create_sim_dataset: simulating Squared() from t=0 to 2 failed: simulate of Squared: dopri5 stopped", "t=1",
                 "step size underflowed", "blows up"]:
        assert part in msg, msg
    assert isinstance(e.value, RuntimeError) and isinstance(e.value.__cause__, SolverError)
    assert e.value.kind == "underflow" and not e.value.stiff


def test_sim_dataset_has_a_step_budget_and_names_stiffness():
    with pytest.raises(SolverError, match="create_sim_dataset: simulating VDP.*looks stiff.*method='auto'") as e:
        create_sim_dataset(VDP(1000.0), torch.linspace(0, 3000, 5), initial_conditions_default=torch.tensor([2.0, 0.0]),
                           num_samples=1, max_steps=300, method="dopri5")
    assert e.value.stiff and e.value.kind == "steps"
    with pytest.raises(SolverError, match="ran out of time"):
        create_sim_dataset(VDP(1000.0), torch.linspace(0, 3000, 5), initial_conditions_default=torch.tensor([2.0, 0.0]),
                           num_samples=1, max_time=0.2)


def test_sim_dataset_wraps_solver_errors(monkeypatch):
    import paramfittorchdemo.data as data_module
    error = SolverError("dopri5 stopped at t=3: it used its budget of 10 steps", "steps", 3.0, True)
    def failing(*args, **kw): raise error
    monkeypatch.setattr(data_module, "simulate", failing)
    with pytest.raises(SolverError) as e:
        create_sim_dataset(VDP(0.3), torch.linspace(0, 1, 5))
    msg = str(e.value)
    assert msg.startswith("create_sim_dataset: simulating VDP(mu=0.3) from t=0 to 1 failed: dopri5 stopped at t=3"), msg
    assert (e.value.kind, e.value.t, e.value.stiff) == ("steps", 3.0, True) and e.value.__cause__ is error
    monkeypatch.setattr(data_module, "simulate", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("device-side failure")))
    with pytest.raises(RuntimeError, match="^device-side failure$"):  # anything else passes through as it was raised
        create_sim_dataset(VDP(0.3), torch.linspace(0, 1, 5))


def test_sim_dataset_low_precision_time_points_get_a_hint():
    with pytest.raises(SolverError, match=r"time points are torch.float16, .* use ts.float\(\)"):
        create_sim_dataset(VDP(0.3), torch.linspace(0, 1, 5).half(), num_samples=2)


def test_sim_dataset_model_that_cannot_run():
    with pytest.raises(TypeError,
                       match=r"calling the model Linear\(in_features=2.* as model\(t, y\).*y of shape \(10, 2\).*raised TypeError"):
        create_sim_dataset(torch.nn.Linear(2, 2), torch.linspace(0, 1, 5))
    class Raises(torch.nn.Module):
        dim = 2
        def forward(self, t, y): raise KeyError("k")
    with pytest.raises(ValueError, match=r"calling the model Raises\(\) .* raised KeyError: 'k'") as e:
        create_sim_dataset(Raises(), torch.linspace(0, 1, 5))
    assert isinstance(e.value.__cause__, KeyError)
    class OneOfTwo(torch.nn.Module):
        dim = 2
        def forward(self, t, y): return y[..., :1]
    with pytest.raises(ValueError, match=r"dy/dt with the shape of y, \(10, 2\) .* OneOfTwo\(\) returned shape \(10, 1\)"):
        create_sim_dataset(OneOfTwo(), torch.linspace(0, 1, 5))
