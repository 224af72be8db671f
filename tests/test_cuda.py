"""CUDA behaviour: the model's device decides where everything runs. Skipped on machines without a GPU."""
import pytest
import torch

from paramfittorchdemo import LotkaVolterra, NeuralDiffEq, VDP, create_sim_dataset, plot_phase_plane, plot_time_series, simulate, train
from paramfittorchdemo.cli import demo

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_simulate_moves_inputs_to_the_model():
    m = LotkaVolterra().cuda()
    ys = simulate(m, torch.ones(3, 2), torch.linspace(0, 1, 5))
    assert ys.device.type == "cuda" and ys.shape == (3, 5, 2)
    cpu = simulate(LotkaVolterra(), torch.ones(3, 2), torch.linspace(0, 1, 5))
    assert torch.allclose(ys.cpu(), cpu, atol=1e-5)


def test_sim_dataset_from_a_cuda_model_lives_on_cpu():
    d = create_sim_dataset(VDP(0.3).cuda(), torch.linspace(0, 5, 6), seed=0)
    assert d.tensors()[1].device.type == "cpu"


def test_train_on_cuda_matches_cpu_in_float64():
    d = create_sim_dataset(VDP(0.3), torch.linspace(0.0, 10.0, 10, dtype=torch.float64), sigma_noise=0.01, seed=0,
                           initial_conditions_default=torch.zeros(2, dtype=torch.float64))
    cpu, gpu = VDP(0.1).double(), VDP(0.1).double().cuda()
    hc = train(cpu, d, epochs=5, show_every=None, seed=0)
    hg = train(gpu, d, epochs=5, show_every=None, seed=0)
    assert gpu.mu.device.type == "cuda"
    assert abs(cpu.mu.item() - gpu.mu.item()) < 1e-9
    assert hc.loss == pytest.approx(hg.loss, rel=1e-9)


def test_neural_ode_and_plots_on_cuda(tmp_path):
    d = create_sim_dataset(VDP(0.2), torch.linspace(0, 5, 20), seed=0)
    m = NeuralDiffEq(2).cuda()
    h = train(m, d, epochs=3, lr=1e-3, show_every=None, save_plots_every=1, plot_dir=tmp_path, method="dopri5")
    assert h.epochs == 3 and len(list(tmp_path.iterdir())) == 3
    plot_time_series(VDP(0.2), m, d[0]); plot_phase_plane(VDP(0.2).cuda(), m, d[0])


def test_demo_on_cuda(tmp_path):
    r = demo("vdp", epochs=50, out=tmp_path, device="cuda", show_every=None)
    assert r["params"]["mu"]["rel_error"] < 0.02


def test_fit_on_cuda_matches_cpu():
    from paramfittorchdemo.fitting import fit
    d = create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 10.0, 0.1), initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)
    cpu, gpu = LotkaVolterra(1.6, 1.1, 2.7, 1.2), LotkaVolterra(1.6, 1.1, 2.7, 1.2).cuda()
    rc, rg = fit(cpu, d), fit(gpu, d)
    assert gpu.model_params.device.type == "cuda" and rg.jacobian == "complex"
    for k in rc.params: assert abs(rc.params[k] - rg.params[k]) < 1e-6*abs(rc.params[k]) + 1e-9


def test_multi_start_and_neural_fit_on_cuda():
    from paramfittorchdemo.fitting import fit
    d = create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 10.0, 0.1), initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)
    starts = torch.tensor([1.5, 1.0, 3.0, 1.0], dtype=torch.float64)*(0.8 + 0.4*torch.rand(8, 4, dtype=torch.float64))
    r = fit(LotkaVolterra().cuda(), d, starts=starts)
    assert r.starts["theta"].shape == (8, 4) and r.converged
    nd = create_sim_dataset(VDP(0.2), torch.linspace(0, 3, 10), num_samples=4, seed=0)
    m = NeuralDiffEq(2).cuda()
    r = fit(m, nd, adam_steps=20, max_iter=10)
    assert r.loss < r.history[0] and next(m.parameters()).device.type == "cuda"
