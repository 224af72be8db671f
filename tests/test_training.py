import math

import pytest
import torch

from paramfittorchdemo import (DivergenceError, History, LotkaVolterra, NeuralDiffEq, SimODEData, VDP,
                               create_sim_dataset, train)


@pytest.fixture(scope="module")
def vdp_data():
    return create_sim_dataset(VDP(0.3), torch.linspace(0.0, 10.0, 10), num_samples=10, sigma_noise=0.01, seed=0)


def test_returns_history_with_loss_and_trace(vdp_data, capsys):
    m = VDP(0.1)
    h = train(m, vdp_data, epochs=12, show_every=5, seed=0)
    assert isinstance(h, History) and h.epochs == 12 and h.stop_reason == "completed"
    assert len(h.params["mu"]) == 12 and h.params["mu"][-1] == pytest.approx(m.mu.item())
    assert h.loss[-1] < h.loss[0]
    printed = capsys.readouterr().out.splitlines()
    assert [l.split(":")[0] for l in printed] == ["Loss at 0", "Loss at 5", "Loss at 10"]
    assert float(printed[0].split(": ")[1]) == pytest.approx(h.loss[0])


def test_no_trace_for_big_models():
    d = create_sim_dataset(VDP(0.3), torch.linspace(0, 1, 5), seed=0)
    h = train(NeuralDiffEq(2), d, epochs=2, show_every=None)
    assert h.params == {} and h.epochs == 2


def test_seed_makes_training_deterministic(vdp_data):
    runs = []
    for _ in range(2):
        m = VDP(0.1)
        h = train(m, vdp_data, epochs=4, show_every=None, seed=123)
        runs.append((m.mu.item(), h.loss))
    assert runs[0] == runs[1]


def test_matches_the_post_loop_step_for_step(vdp_data):
    "With the same shuffling, train takes exactly the optimisation steps of the post's loop."
    from torch.utils.data import DataLoader
    from torchdiffeq import odeint
    ref = VDP(0.1)
    loader = DataLoader(vdp_data, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(7))
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    crit = torch.nn.MSELoss()
    for epoch in range(3):
        for ts, states in loader:
            opt.zero_grad()
            pred = odeint(ref, states[:, 0, :], ts[0], method="rk4", options={"step_size": 0.1}).transpose(0, 1)
            loss = crit(pred, states)
            loss.backward()
            opt.step()
    m = VDP(0.1)
    train(m, vdp_data, epochs=3, show_every=None, seed=7)
    assert m.mu.item() == pytest.approx(ref.mu.item(), abs=1e-6)


def test_adaptive_method_with_tolerances(vdp_data):
    m = VDP(0.2)
    h = train(m, vdp_data, epochs=2, method="dopri5", rtol=1e-5, atol=1e-7, show_every=None)
    assert h.epochs == 2


def test_float64_model_trains_on_float32_data(vdp_data):
    m = VDP(0.2).double()
    train(m, vdp_data, epochs=1, show_every=None)
    assert m.mu.dtype == torch.float64


def test_save_plots_every_creates_folder(vdp_data, tmp_path):
    out = tmp_path / "deep" / "plots"
    train(VDP(0.2), vdp_data, epochs=5, save_plots_every=2, model_name="m", plot_dir=out, show_every=None)
    assert sorted(p.name for p in out.iterdir()) == ["0_m_fit_plot.png", "2_m_fit_plot.png", "4_m_fit_plot.png"]


def test_save_plots_without_true_model(tmp_path):
    ts = torch.linspace(0, 1, 4)
    d = SimODEData([ts]*2, [torch.rand(4, 2)]*2)
    train(VDP(0.3), d, epochs=1, save_plots_every=1, plot_dir=tmp_path, show_every=None)
    assert (tmp_path / "0__fit_plot.png").exists()


def test_divergence_stops_and_keeps_last_finite_parameters():
    d = create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 10.0, 0.1), initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)
    m = LotkaVolterra(alpha=50.0)
    with pytest.raises(DivergenceError,
                       match="train stopped: the loss, its gradient or the parameters became NaN or infinite during epoch 0") as e:
        train(m, d, step_size=1.0, show_every=None)
    assert m.model_params.tolist() == [50.0, 1.0, 3.0, 1.0]
    assert e.value.history.stop_reason.startswith("diverged")
    assert isinstance(e.value, FloatingPointError)


def test_divergence_mid_run_keeps_the_last_finite_step(vdp_data, monkeypatch):
    "A huge learning rate walks mu into a blow-up; the parameters left behind are those of the last finite step."
    import paramfittorchdemo.training as tr
    m = VDP(0.3)
    calls = []  # (mu when the batch loss was computed, whether that loss was finite)
    orig = tr._LossGrad.__call__
    def spy(self, y0, ts, states):
        mu = m.mu.item()
        loss = orig(self, y0, ts, states)
        calls.append((mu, bool(torch.isfinite(loss)) and all(bool(torch.isfinite(p.grad).all()) for p in self.params)))
        return loss
    monkeypatch.setattr(tr._LossGrad, "__call__", spy)
    with pytest.raises(DivergenceError) as e:
        train(m, vdp_data, lr=5.0, epochs=200, step_size=1.0, show_every=None, seed=0)
    first_bad = next(i for i, (_, ok) in enumerate(calls) if not ok)
    assert first_bad > 0  # it diverged after some finite steps
    assert math.isfinite(m.mu.item()) and m.mu.item() == calls[first_bad][0]
    assert e.value.history.epochs < 200


def test_adaptive_solver_failure_is_reported_as_divergence(vdp_data):
    class Stiffening(torch.nn.Module):
        dim = 2
        def __init__(self):
            super().__init__()
            self.k = torch.nn.Parameter(torch.tensor(1.0))
        def forward(self, t, y): return self.k*y**3
    d = create_sim_dataset(VDP(0.3), torch.linspace(0.0, 10.0, 10), initial_conditions_default=torch.tensor([3.0, 3.0]), seed=0)
    m = Stiffening()
    with pytest.raises(DivergenceError, match="solver failed|became"):
        train(m, d, epochs=1, method="dopri5", show_every=None)
    assert m.k.item() == 1.0


@pytest.mark.parametrize("kw,match,exc", [
    (dict(epochs=0), "epochs as a positive integer", ValueError),
    (dict(epochs=2.5), "epochs as a positive integer", ValueError),
    (dict(epochs="10"), "epochs as a positive integer", TypeError),
    (dict(lr=0.0), "lr as a positive finite number", ValueError),
    (dict(lr=float("nan")), "lr as a positive finite number", ValueError),
    (dict(batch_size=0), "batch_size", ValueError),
    (dict(step_size=0.0), "step_size", ValueError),
    (dict(step_size=-0.1), "step_size", ValueError),
    (dict(method="rk45"), "unknown solver method 'rk45'", ValueError),
    (dict(show_every=0), "show_every", ValueError),
    (dict(save_plots_every=-1), "save_plots_every", ValueError),
    (dict(method="dopri5", rtol=0.0), "rtol must be a positive", ValueError),
    (dict(options={}), "unexpected keyword arguments", TypeError),
])
def test_bad_arguments(vdp_data, kw, match, exc):
    m = VDP(0.2)
    with pytest.raises(exc, match=match):
        train(m, vdp_data, **kw)
    assert m.mu.item() == pytest.approx(0.2)


def test_bad_positional_extra(vdp_data):
    with pytest.raises(TypeError, match="no extra positional"):
        train(VDP(0.2), vdp_data, 1e-2, 1, 5, "rk4", 0.1, 10, None, "", "surprise")


def test_adaptive_method_ignores_step_size_checks(vdp_data):
    "step_size only means something to fixed-step solvers; an adaptive fit does not trip over it."
    train(VDP(0.2), vdp_data, epochs=1, method="dopri5", step_size=-1.0, show_every=None)


def test_state_dimension_mismatch():
    d = SimODEData([torch.linspace(0, 1, 4)], [torch.zeros(4, 3)])
    with pytest.raises(ValueError, match="VDP has a state of dimension 2, but the data have 3"):
        train(VDP(0.3), d)


def test_state_dimension_mismatch_without_dim_attribute():
    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
        def forward(self, t, y): return self.lin(y)
    d = SimODEData([torch.linspace(0, 1, 4)], [torch.zeros(4, 3)])
    with pytest.raises((ValueError, RuntimeError)):
        train(Plain(), d)


@pytest.mark.parametrize("data,match,exc", [
    ((torch.linspace(0, 1, 4), torch.zeros(2, 4, 2)), "SimODEData", TypeError),
    (SimODEData([torch.linspace(0, 1, 4), torch.linspace(0, 2, 4)], [torch.zeros(4, 2)]*2), "same time grid", ValueError),
])
def test_bad_data(data, match, exc):
    with pytest.raises(exc, match=match):
        train(VDP(0.3), data)


def test_model_without_parameters(vdp_data):
    class Fixed(torch.nn.Module):
        dim = 2
        def forward(self, t, y): return -y
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(Fixed(), vdp_data)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        train(lambda t, y: -y, vdp_data)


def test_data_follow_the_model_device(vdp_data, monkeypatch):
    "The batches are moved to the model's device and dtype (checked here with a float64 'device' stand-in)."
    m = VDP(0.2).double()
    calls = []
    import paramfittorchdemo.solvers as so
    import paramfittorchdemo.training as tr
    orig = so.integrate
    def spy(f, y0, ts, *a, **kw):
        calls.append((y0.real.dtype, ts.dtype, y0.device))
        return orig(f, y0, ts, *a, **kw)
    monkeypatch.setattr(so, "integrate", spy)
    monkeypatch.setattr(so.sensitivities, "integrate", spy)  # the population solves (complex-step gradients) call it from there
    monkeypatch.setattr(tr, "integrate", spy)
    adjoint_calls = []
    orig_adj = so.MLPAdjoint.loss_and_grad
    def spy_adj(self, y0, ts, states, *a, **kw):
        adjoint_calls.append((y0.dtype, ts.dtype, states.dtype))
        return orig_adj(self, y0, ts, states, *a, **kw)
    monkeypatch.setattr(so.MLPAdjoint, "loss_and_grad", spy_adj)
    class Net(NeuralDiffEq):  # its own forward: the autograd path
        def forward(self, t, y): return self.ann(y)
    train(m, vdp_data, epochs=1, show_every=None)
    train(Net(2).double(), vdp_data, epochs=1, show_every=None)
    assert len(calls) == 4 and all(c[0] == torch.float64 and c[1] == torch.float64 for c in calls)
    train(NeuralDiffEq(2).double(), vdp_data, epochs=1, show_every=None)  # the written-out adjoint
    assert len(calls) == 4 and len(adjoint_calls) == 2 and all(c == (torch.float64,)*3 for c in adjoint_calls)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trains_on_cuda(vdp_data):
    m = VDP(0.1).cuda()
    h = train(m, vdp_data, epochs=5, show_every=None, seed=0)
    assert m.mu.device.type == "cuda" and h.loss[-1] < h.loss[0]


# the written-out adjoint of rk4 through a plain perceptron (NeuralDiffEq): the same training as autograd, with the same safeguards

@pytest.fixture(scope="module")
def nde_data():
    return create_sim_dataset(VDP(0.2), torch.linspace(0.0, 6.0, 20), num_samples=8, sigma_noise=0.1, seed=0,
                              initial_conditions_default=torch.tensor([0.5, 0.1]))


def _autograd_only(monkeypatch):
    import paramfittorchdemo.training as tr
    monkeypatch.setattr(tr, "mlp_layers", lambda model: None)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-3)])
@pytest.mark.parametrize("step_size", [0.1, None])
def test_adjoint_trains_like_autograd(nde_data, monkeypatch, dtype, tol, step_size):
    runs = []
    for path in ("adjoint", "autograd"):
        if path == "autograd": _autograd_only(monkeypatch)
        torch.manual_seed(1)
        m = NeuralDiffEq(2).to(dtype)
        h = train(m, nde_data, epochs=5, lr=1e-2, batch_size=3, step_size=step_size, show_every=None, seed=0)
        runs.append((torch.cat([p.detach().reshape(-1) for p in m.parameters()]), h.loss))
    (p1, l1), (p2, l2) = runs
    assert torch.allclose(p1, p2, rtol=tol, atol=tol) and l1 == pytest.approx(l2, rel=tol)


def test_adjoint_is_used_only_where_it_applies(nde_data, monkeypatch):
    from paramfittorchdemo.training import _LossGrad
    kw = dict(step_size=0.1, rtol=1e-7, atol=1e-9, max_steps=1000)
    assert _LossGrad(NeuralDiffEq(2), "rk4", kw, 2).mode == "adjoint"
    assert _LossGrad(NeuralDiffEq(2), "dopri5", kw, 2).mode == "autograd"  # adaptive steps: autograd
    frozen = NeuralDiffEq(2)
    frozen.ann[0].weight.requires_grad_(False)  # a frozen layer: its gradient must stay unset, so autograd
    assert _LossGrad(frozen, "rk4", kw, 2).mode == "autograd"
    h = train(frozen, nde_data, epochs=2, show_every=None, seed=0)
    assert h.epochs == 2 and frozen.ann[0].weight.grad is None
    import paramfittorchdemo.solvers.explicit as so
    monkeypatch.setattr(so, "_MLP_MAX_ELEMENTS", 10)  # too large for the adjoint's arrays: autograd, same result
    torch.manual_seed(1); m1 = NeuralDiffEq(2).double()
    train(m1, nde_data, epochs=2, show_every=None, seed=0)
    monkeypatch.undo()
    torch.manual_seed(1); m2 = NeuralDiffEq(2).double()
    train(m2, nde_data, epochs=2, show_every=None, seed=0)
    assert all(torch.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(m1.parameters(), m2.parameters()))


def test_adjoint_blow_up_stops_with_the_last_finite_parameters(nde_data):
    m = NeuralDiffEq(2)
    with torch.no_grad():
        for p in m.parameters(): p.mul_(40.0)
    before = [p.detach().clone() for p in m.parameters()]
    with pytest.raises(DivergenceError, match="NaN or infinite"):
        train(m, nde_data, epochs=3, method="rk4", show_every=None, seed=0)  # the adjoint path
    assert all(torch.isfinite(p).all() for p in m.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))  # the very first step was not finite: nothing moved


def test_adjoint_step_budget(nde_data):
    with pytest.raises(DivergenceError, match="more than max_steps=10"):
        train(NeuralDiffEq(2), nde_data, epochs=1, show_every=None, max_steps=10)


def test_neural_ode_matches_the_post_loop(nde_data):
    "The post's neural-ODE loop (torchdiffeq rk4 and autograd) and train's written-out adjoint take the same steps, to float32 rounding."
    from torch.utils.data import DataLoader
    from torchdiffeq import odeint
    torch.manual_seed(3); ref = NeuralDiffEq(2)
    torch.manual_seed(3); m = NeuralDiffEq(2)
    loader = DataLoader(nde_data, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(7))
    opt, crit = torch.optim.Adam(ref.parameters(), lr=1e-3), torch.nn.MSELoss()
    for epoch in range(3):
        for ts, states in loader:
            opt.zero_grad()
            loss = crit(odeint(ref, states[:, 0, :], ts[0], method="rk4", options={"step_size": 0.1}).transpose(0, 1), states)
            loss.backward()
            opt.step()
    train(m, nde_data, epochs=3, lr=1e-3, batch_size=5, show_every=None, seed=7)
    for a, b in zip(ref.parameters(), m.parameters()): assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
