import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import paramfittorchdemo.checkpoints as checkpoints
from paramfittorchdemo import LotkaVolterra, NeuralDiffEq, VDP, create_sim_dataset, train
from paramfittorchdemo.callbacks import Callback
from paramfittorchdemo.checkpoints import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def vdp_data():
    return create_sim_dataset(VDP(0.3), torch.linspace(0.0, 10.0, 10), num_samples=10, sigma_noise=0.01, seed=0)


class Raise(Callback):
    "Raises KeyboardInterrupt at the end of epoch `at`, as Ctrl-C would."
    def __init__(self, at): self.at = at
    def on_epoch_end(self, state):
        if state.epoch == self.at: raise KeyboardInterrupt


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    "Equal to the last bit."
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- save_checkpoint / load_checkpoint

def test_round_trip_leaves_no_temporary_file(tmp_path):
    state = {"epoch": 3, "w": torch.arange(4.0), "nested": {"l": [1, 2.5, None, "x"], "t": (1, 2)}}
    assert save_checkpoint(tmp_path/"sub"/"ck.pt", state) == tmp_path/"sub"/"ck.pt"
    back = load_checkpoint(tmp_path/"sub"/"ck.pt")
    assert back["epoch"] == 3 and torch.equal(back["w"], torch.arange(4.0)) and back["nested"] == {"l": [1, 2.5, None, "x"], "t": (1, 2)}
    assert os.listdir(tmp_path/"sub") == ["ck.pt"]


def test_overwrite_replaces_the_file(tmp_path):
    save_checkpoint(tmp_path/"ck.pt", {"v": 1})
    save_checkpoint(str(tmp_path/"ck.pt"), {"v": 2})
    assert load_checkpoint(str(tmp_path/"ck.pt")) == {"v": 2} and os.listdir(tmp_path) == ["ck.pt"]


@pytest.mark.parametrize("exc", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_failing_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, exc):
    save_checkpoint(tmp_path/"ck.pt", {"epoch": 1, "w": torch.ones(3)})
    real_save = torch.save
    def half_then_fail(obj, f, *a, **kw):
        f.write(b"PK\x03\x04 half a checkpoint")  # part of a file, as a full disk or a kill leaves it
        f.flush()
        raise exc
    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(type(exc)):
        save_checkpoint(tmp_path/"ck.pt", {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.setattr(torch, "save", real_save)
    back = load_checkpoint(tmp_path/"ck.pt")
    assert back["epoch"] == 1 and torch.equal(back["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["ck.pt"]  # the temporary file is gone


def test_a_failing_write_during_train_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, vdp_data):
    ck = tmp_path/"run.pt"
    train(VDP(0.1), vdp_data, epochs=2, show_every=None, seed=0, checkpoint=ck)
    def broken(obj, f, *a, **kw):
        f.write(b"garbage")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        train(VDP(0.1), vdp_data, epochs=4, show_every=None, seed=0, checkpoint=ck, resume=True)
    monkeypatch.undo()
    assert load_checkpoint(ck)["epoch"] == 2 and os.listdir(tmp_path) == ["run.pt"]


class TouchOnLoad:
    "A pickle that creates a file when it is unpickled."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (Path.touch, (Path(self.marker),))


class SystemOnLoad:
    "A pickle that runs a shell command when it is unpickled."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("evil", [TouchOnLoad, SystemOnLoad])
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, evil, writer):
    marker, path = tmp_path/"pwned", tmp_path/"evil.pt"
    payload = {"format": "paramfittorchdemo.train", "model": evil(marker)}
    if writer == "torch.save": torch.save(payload, path)
    else: path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match="not a valid checkpoint") as err:
        load_checkpoint(path)
    assert "refuses to unpickle arbitrary objects" in str(err.value) and str(path) in str(err.value)
    assert not marker.exists()


def test_train_refuses_a_malicious_checkpoint_on_resume(tmp_path, vdp_data):
    marker, path = tmp_path/"pwned", tmp_path/"run.pt"
    torch.save({"format": "paramfittorchdemo.train", "model": TouchOnLoad(marker)}, path)
    with pytest.raises(ValueError, match="refuses to unpickle"):
        train(VDP(0.1), vdp_data, epochs=2, show_every=None, checkpoint=path, resume=True)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_corrupt_checkpoints_are_refused(tmp_path, content):
    path = tmp_path/"bad.pt"
    if content is None:  # a checkpoint cut short
        save_checkpoint(path, {"w": torch.ones(100)})
        path.write_bytes(path.read_bytes()[:200])
    else: path.write_bytes(content)
    with pytest.raises(ValueError, match="is not a valid checkpoint"):
        load_checkpoint(path)


def test_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"): load_checkpoint(tmp_path/"missing.pt")
    with pytest.raises(TypeError, match="state as a dict"): save_checkpoint(tmp_path/"x.pt", [1, 2])
    with pytest.raises(TypeError, match="path as a file path"): save_checkpoint(3, {})
    with pytest.raises(TypeError, match="path as a file path"): load_checkpoint(None)


# ---------------------------------------------------------------- what train saves

def test_train_checkpoint_contents(tmp_path, vdp_data):
    ck = tmp_path/"run.pt"
    h = train(VDP(0.1), vdp_data, epochs=3, show_every=None, seed=4, checkpoint=ck)
    saved = load_checkpoint(ck)  # weights_only: only tensors and plain values inside
    assert saved["format"] == "paramfittorchdemo.train" and saved["version"] == 1 and saved["epoch"] == 3
    assert saved["options"] == dict(model="VDP", data=[10, 10, 2], lr=0.01, batch_size=5, method="auto", step_size=0.1,
                                    rtol=None, atol=None, seed=4)
    assert saved["history"]["loss"] == h.loss and saved["history"]["params"] == h.params
    assert isinstance(saved["history"]["seconds"], float)
    assert set(saved["rng"]) == {"torch", "batch_order", "python", "numpy"}
    assert isinstance(saved["rng"]["batch_order"], torch.Tensor) and isinstance(saved["rng"]["python"][1], list)
    assert set(saved["model"]) == {"mu"} and set(saved["optimizer"]) == {"state", "param_groups"}
    assert all(t.device.type == "cpu" for t in saved["optimizer"]["state"][0].values())


def test_checkpoint_every(tmp_path, monkeypatch, vdp_data):
    written = []
    real = checkpoints.save_checkpoint
    def spy(path, state):
        written.append(state["epoch"])
        return real(path, state)
    monkeypatch.setattr(checkpoints, "save_checkpoint", spy)
    train(VDP(0.1), vdp_data, epochs=7, show_every=None, checkpoint=tmp_path/"run.pt", checkpoint_every=3)
    assert written == [3, 6, 7]
    written.clear()
    train(VDP(0.1), vdp_data, epochs=6, show_every=None, checkpoint=tmp_path/"other.pt", checkpoint_every=3)
    assert written == [3, 6]  # the end coincides with a regular save: written once


def test_no_checkpoint_no_files(tmp_path, vdp_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train(VDP(0.1), vdp_data, epochs=2, show_every=None)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kw,exc,match", [
    (dict(resume=True), ValueError, "needs the file to resume from"),
    (dict(checkpoint=3), TypeError, "checkpoint as a file path"),
    (dict(checkpoint="x.pt", checkpoint_every=0), ValueError, "checkpoint_every as a positive integer"),
    (dict(checkpoint="x.pt", resume="yes"), TypeError, "resume as True or False"),
])
def test_checkpoint_argument_errors(vdp_data, kw, exc, match):
    with pytest.raises(exc, match=match):
        train(VDP(0.1), vdp_data, epochs=2, show_every=None, **kw)


# ---------------------------------------------------------------- reproducibility

def test_same_seed_is_bit_for_bit_repeatable_and_other_seeds_differ():
    data = create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 5.0, 0.1), num_samples=10, sigma_noise=0.1,
                              initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)
    runs = []
    for seed in (11, 11, 12):
        torch.manual_seed(seed*7)  # the global generator must not matter when a seed is given
        m = LotkaVolterra(1.6, 1.1, 2.7, 1.2)
        h = train(m, data, epochs=4, batch_size=3, show_every=None, seed=seed)
        runs.append((m, h))
    (m1, h1), (m2, h2), (m3, h3) = runs
    assert same_state(m1, m2) and h1.loss == h2.loss and h1.params == h2.params
    assert not same_state(m1, m3) and h1.loss != h3.loss


def test_neural_ode_with_a_seed_is_repeatable():
    data = create_sim_dataset(VDP(0.2), torch.linspace(0, 3, 10), num_samples=6, sigma_noise=0.0, seed=0)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        m = NeuralDiffEq(2)
        train(m, data, epochs=3, batch_size=2, show_every=None, seed=5)
        models.append(m)
    assert same_state(*models)


# ---------------------------------------------------------------- resume

def reference_run(data, epochs, model=VDP, **kw):
    m = model(0.1)
    h = train(m, data, show_every=None, epochs=epochs, **kw)
    return m, h


@pytest.mark.parametrize("every", [1, 2, 5])
def test_resume_after_keyboard_interrupt_matches_an_uninterrupted_run(tmp_path, vdp_data, every):
    ck = tmp_path/"run.pt"
    ref_model, ref = reference_run(vdp_data, 8, seed=7)
    with pytest.raises(KeyboardInterrupt):
        train(VDP(0.1), vdp_data, epochs=8, show_every=None, seed=7, checkpoint=ck, checkpoint_every=every, callbacks=[Raise(3)])
    assert load_checkpoint(ck)["epoch"] == 3  # epochs 0-2 done; epoch 3's callbacks were interrupted, so it runs again
    m = VDP(0.1)
    h = train(m, vdp_data, epochs=8, show_every=None, seed=7, checkpoint=ck, checkpoint_every=every, resume=True)
    assert same_state(m, ref_model)
    assert h.loss == ref.loss and h.params == ref.params and h.stop_reason == "completed"
    assert load_checkpoint(ck)["epoch"] == 8


class VDPStop(VDP):
    "A VDP whose right-hand side raises KeyboardInterrupt once armed: Ctrl-C in the middle of an epoch."
    armed = False
    def forward(self, t, y):
        if VDPStop.armed:
            VDPStop.armed = False
            raise KeyboardInterrupt
        return super().forward(t, y)


def test_resume_after_an_interrupt_mid_epoch(tmp_path, vdp_data):
    class Arm(Callback):
        def on_epoch_end(self, state): VDPStop.armed = state.epoch == 2
    ck = tmp_path/"run.pt"
    ref_model, ref = reference_run(vdp_data, 6, model=VDPStop, seed=2)
    with pytest.raises(KeyboardInterrupt):
        train(VDPStop(0.1), vdp_data, epochs=6, show_every=None, seed=2, checkpoint=ck, checkpoint_every=2, callbacks=[Arm()])
    assert load_checkpoint(ck)["epoch"] == 3  # the last finished epoch, written on the interrupt although 3 % 2 != 0
    m = VDPStop(0.1)
    h = train(m, vdp_data, epochs=6, show_every=None, seed=2, checkpoint=ck, resume=True)
    assert same_state(m, ref_model) and h.loss == ref.loss and h.params == ref.params


def test_resume_without_a_seed_restores_the_global_generator(tmp_path, vdp_data):
    ck = tmp_path/"run.pt"
    torch.manual_seed(123)
    ref_model, ref = reference_run(vdp_data, 6)
    torch.manual_seed(123)
    with pytest.raises(KeyboardInterrupt):
        train(VDP(0.1), vdp_data, epochs=6, show_every=None, checkpoint=ck, callbacks=[Raise(2)])
    torch.manual_seed(999); random.seed(999); np.random.seed(999)  # a new process starts elsewhere
    m = VDP(0.1)
    h = train(m, vdp_data, epochs=6, show_every=None, checkpoint=ck, resume=True)
    assert same_state(m, ref_model) and h.loss == ref.loss


def test_resume_restores_python_and_numpy_generators(tmp_path, vdp_data):
    ck = tmp_path/"run.pt"
    random.seed(5); np.random.seed(5)
    train(VDP(0.1), vdp_data, epochs=2, show_every=None, seed=0, checkpoint=ck)
    expected = (random.random(), float(np.random.rand()))
    random.seed(6); np.random.seed(6)
    train(VDP(0.1), vdp_data, epochs=2, show_every=None, seed=0, checkpoint=ck, resume=True)  # nothing left to run
    assert (random.random(), float(np.random.rand())) == expected


def test_resume_a_neural_ode(tmp_path):
    data = create_sim_dataset(VDP(0.2), torch.linspace(0, 3, 10), num_samples=6, sigma_noise=0.0, seed=0)
    ck = tmp_path/"nde.pt"
    torch.manual_seed(0); ref_model = NeuralDiffEq(2)
    ref = train(ref_model, data, epochs=4, batch_size=2, show_every=None, seed=1)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(NeuralDiffEq(2), data, epochs=4, batch_size=2, show_every=None, seed=1, checkpoint=ck, callbacks=[Raise(1)])
    m = NeuralDiffEq(2)  # other initial weights: the checkpoint replaces them
    h = train(m, data, epochs=4, batch_size=2, show_every=None, seed=1, checkpoint=ck, resume=True)
    assert same_state(m, ref_model) and h.loss == ref.loss and h.params == {}


def test_resume_can_extend_a_finished_run(tmp_path, vdp_data):
    ck = tmp_path/"run.pt"
    ref_model, ref = reference_run(vdp_data, 6, seed=3)
    train(VDP(0.1), vdp_data, epochs=4, show_every=None, seed=3, checkpoint=ck)
    m = VDP(0.1)
    h = train(m, vdp_data, epochs=6, show_every=None, seed=3, checkpoint=ck, resume=True)
    assert same_state(m, ref_model) and h.loss == ref.loss


def test_resume_of_a_finished_run_runs_nothing(tmp_path, vdp_data, capsys):
    ck = tmp_path/"run.pt"
    ref_model, ref = reference_run(vdp_data, 3, seed=3)
    train(VDP(0.1), vdp_data, epochs=3, show_every=None, seed=3, checkpoint=ck)
    m = VDP(0.1)
    h = train(m, vdp_data, epochs=3, show_every=1, seed=3, checkpoint=ck, resume=True)
    assert capsys.readouterr().out == "" and h.loss == ref.loss and h.stop_reason == "completed" and same_state(m, ref_model)


def test_resume_without_a_checkpoint_starts_afresh(tmp_path, vdp_data):
    ck = tmp_path/"new"/"run.pt"
    ref_model, ref = reference_run(vdp_data, 3, seed=9)
    m = VDP(0.1)
    h = train(m, vdp_data, epochs=3, show_every=None, seed=9, checkpoint=ck, resume=True)
    assert same_state(m, ref_model) and h.loss == ref.loss and load_checkpoint(ck)["epoch"] == 3


def test_the_clock_goes_on_after_resume(tmp_path, vdp_data):
    ck = tmp_path/"run.pt"
    train(VDP(0.1), vdp_data, epochs=2, show_every=None, seed=0, checkpoint=ck)
    before = load_checkpoint(ck)["history"]["seconds"]
    h = train(VDP(0.1), vdp_data, epochs=3, show_every=None, seed=0, checkpoint=ck, resume=True)
    assert h.seconds > before > 0


@pytest.mark.parametrize("kw,match", [
    (dict(lr=0.02), "lr=0.01, but this call has lr=0.02"),
    (dict(batch_size=3), "batch_size=5, but this call has batch_size=3"),
    (dict(seed=8), "seed=7, but this call has seed=8"),
    (dict(seed=None), "seed=7, but this call has seed=None"),
    (dict(method="euler"), "method='auto', but this call has method='euler'"),
    (dict(step_size=0.05), "step_size=0.1, but this call has step_size=0.05"),
    (dict(method="dopri5"), "method='auto', step_size=0.1, rtol=None, atol=None, but this call has method='dopri5'"),
])
def test_mismatched_options_on_resume_raise(tmp_path, vdp_data, kw, match):
    ck = tmp_path/"run.pt"
    train(VDP(0.1), vdp_data, epochs=2, show_every=None, seed=7, checkpoint=ck)
    opts = dict(epochs=4, show_every=None, seed=7, checkpoint=ck, resume=True)
    with pytest.raises(ValueError, match="resume with other options|resuming with other options") as err:
        train(VDP(0.1), vdp_data, **{**opts, **kw})
    assert match in str(err.value) and str(ck) in str(err.value)


def test_other_model_or_data_on_resume_raise(tmp_path, vdp_data):
    ck = tmp_path/"run.pt"
    train(VDP(0.1), vdp_data, epochs=2, show_every=None, seed=7, checkpoint=ck)
    lv = create_sim_dataset(LotkaVolterra(), torch.linspace(0, 5, 10), num_samples=10, initial_conditions_default=torch.tensor([2.5, 2.5]),
                            seed=0)
    with pytest.raises(ValueError, match="model='VDP'"):
        train(LotkaVolterra(), lv, epochs=4, show_every=None, seed=7, checkpoint=ck, resume=True)
    other = create_sim_dataset(VDP(0.3), torch.linspace(0.0, 10.0, 12), num_samples=10, seed=0)
    with pytest.raises(ValueError, match=r"data=\[10, 10, 2\], but this call has data=\[10, 12, 2\]"):
        train(VDP(0.1), other, epochs=4, show_every=None, seed=7, checkpoint=ck, resume=True)
    with pytest.raises(ValueError, match="already run 2 epochs, more than epochs=1"):
        train(VDP(0.1), vdp_data, epochs=1, show_every=None, seed=7, checkpoint=ck, resume=True)


def test_a_file_not_written_by_train_is_refused_on_resume(tmp_path, vdp_data):
    ck = save_checkpoint(tmp_path/"other.pt", {"weights": torch.ones(2)})
    with pytest.raises(ValueError, match="was not written by train"):
        train(VDP(0.1), vdp_data, epochs=2, show_every=None, checkpoint=ck, resume=True)
    saved = {"format": "paramfittorchdemo.train", "version": 99}
    save_checkpoint(ck, saved)
    with pytest.raises(ValueError, match="format version 99"):
        train(VDP(0.1), vdp_data, epochs=2, show_every=None, checkpoint=ck, resume=True)


# ---------------------------------------------------------------- a killed process

KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import torch
    from paramfittorchdemo import Callback, VDP, create_sim_dataset, train

    class Kill(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 4: os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally, no atexit

    data = create_sim_dataset(VDP(0.3), torch.linspace(0.0, 10.0, 10), num_samples=10, sigma_noise=0.01, seed=0)
    callbacks = [Kill()] if sys.argv[2] == "kill" else []
    train(VDP(0.1), data, epochs=8, show_every=None, seed=3, checkpoint=sys.argv[1], checkpoint_every=1,
          resume=sys.argv[2] == "resume", callbacks=callbacks)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_resume_after_the_process_was_killed(tmp_path, vdp_data):
    ck = tmp_path/"run.pt"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    run = lambda mode: subprocess.run([sys.executable, "-c", KILLED_RUN, str(ck), mode], env=env, cwd=tmp_path,
                                      capture_output=True, text=True, timeout=300)
    killed = run("kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert load_checkpoint(ck)["epoch"] == 4 and os.listdir(tmp_path) == ["run.pt"]
    resumed = run("resume")  # a new process
    assert resumed.returncode == 0, resumed.stderr
    ref_model, ref = reference_run(vdp_data, 8, seed=3)
    saved = load_checkpoint(ck)
    assert saved["epoch"] == 8
    assert torch.equal(saved["model"]["mu"], ref_model.mu.detach())  # to the last bit
    assert saved["history"]["loss"] == ref.loss and saved["history"]["params"] == ref.params
    m = VDP(0.1)  # and resuming the finished run in this process gives the same model
    h = train(m, vdp_data, epochs=8, show_every=None, seed=3, checkpoint=ck, resume=True)
    assert same_state(m, ref_model) and h.loss == ref.loss


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resume_on_cuda(tmp_path, vdp_data):
    "A CUDA model's checkpoint is written from the device and loaded back onto it; the resumed run matches."
    ck = tmp_path/"run.pt"
    ref_model = VDP(0.1).cuda()
    ref = train(ref_model, vdp_data, epochs=5, show_every=None, seed=1)
    with pytest.raises(KeyboardInterrupt):
        train(VDP(0.1).cuda(), vdp_data, epochs=5, show_every=None, seed=1, checkpoint=ck, checkpoint_every=2, callbacks=[Raise(2)])
    assert load_checkpoint(ck)["model"]["mu"].device.type == "cpu"
    m = VDP(0.1).cuda()
    h = train(m, vdp_data, epochs=5, show_every=None, seed=1, checkpoint=ck, resume=True)
    assert m.mu.device.type == "cuda"
    torch.testing.assert_close(m.mu.cpu(), ref_model.mu.cpu(), rtol=1e-6, atol=0)
    assert h.loss == pytest.approx(ref.loss, rel=1e-6)
