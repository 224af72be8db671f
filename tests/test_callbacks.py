import io
import json
import sys
from pathlib import Path

import pytest
import torch

from paramfittorchdemo import (DivergenceError, History, LotkaVolterra, NeuralDiffEq, VDP, create_sim_dataset, param_dict,
                               train)
from paramfittorchdemo.callbacks import (BestParameters, Callback, EarlyStopping, MLflowLogger, PlotSnapshots, ProgressBar,
                                         TensorBoardLogger, TrainState)
from paramfittorchdemo.fitting import fit


@pytest.fixture(scope="module")
def vdp_data():
    return create_sim_dataset(VDP(0.3), torch.linspace(0.0, 10.0, 10), num_samples=10, sigma_noise=0.01, seed=0)


@pytest.fixture(scope="module")
def lv_data():
    return create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 10.0, 0.1), num_samples=10, sigma_noise=0.1,
                              initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)


@pytest.fixture(scope="module")
def nde_data():
    return create_sim_dataset(VDP(0.2), torch.linspace(0, 3, 10), num_samples=4, sigma_noise=0.0, seed=0)


class Recorder(Callback):
    "Writes every hook call into a shared log, and stops the run at `stop_at` if given."
    def __init__(self, name="rec", log=None, stop_at=None):
        self.name, self.log, self.stop_at, self.states = name, [] if log is None else log, stop_at, []
    def on_fit_start(self, state): self.log.append((self.name, "start", state.epoch))
    def on_epoch_end(self, state):
        self.log.append((self.name, "epoch", state.epoch))
        self.states.append(dict(epoch=state.epoch, loss=state.loss, params=dict(state.params), phase=state.extra.get("phase"),
                                optimizer=state.optimizer))
        return state.epoch == self.stop_at
    def on_fit_end(self, state): self.log.append((self.name, "end", state.extra["stop_reason"]))


class Raise(Callback):
    def __init__(self, at, exc=KeyboardInterrupt): self.at, self.exc = at, exc
    def on_epoch_end(self, state):
        if state.epoch == self.at: raise self.exc()


# ---------------------------------------------------------------- the hooks in train

def test_hooks_run_in_order_with_the_run_state(vdp_data):
    log = []
    a, b = Recorder("a", log), Recorder("b", log)
    m = VDP(0.1)
    seen = {}
    class Peek(Callback):
        def on_fit_start(self, state): seen["start"] = (state.model is m, state.data is vdp_data, dict(state.extra))
        def on_epoch_end(self, state): seen["epoch"] = (type(state.history), state.history.epochs, type(state.optimizer))
    h = train(m, vdp_data, epochs=3, show_every=None, seed=0, callbacks=[a, b, Peek()])
    assert log == [("a", "start", 0), ("b", "start", 0),
                   ("a", "epoch", 0), ("b", "epoch", 0), ("a", "epoch", 1), ("b", "epoch", 1), ("a", "epoch", 2), ("b", "epoch", 2),
                   ("a", "end", "completed"), ("b", "end", "completed")]
    assert [s["loss"] for s in a.states] == h.loss
    assert [s["params"]["mu"] for s in a.states] == h.params["mu"]
    same_model, same_data, extra = seen["start"]
    assert same_model and same_data
    assert extra["caller"] == "train" and extra["total"] == 3
    assert extra["options"]["lr"] == 1e-2 and extra["options"]["epochs"] == 3 and extra["options"]["seed"] == 0
    assert seen["epoch"] == (History, 3, torch.optim.Adam)


def test_a_single_callback_need_not_be_in_a_list(vdp_data):
    rec = Recorder()
    train(VDP(0.1), vdp_data, epochs=2, show_every=None, callbacks=rec)
    assert [e for _, e, _ in rec.log] == ["start", "epoch", "epoch", "end"]


def test_a_duck_typed_callback_works(vdp_data):
    class Duck:  # not a Callback subclass, but it has a hook
        def __init__(self): self.epochs = []
        def on_epoch_end(self, state): self.epochs.append(state.epoch)
    d = Duck()
    train(VDP(0.1), vdp_data, epochs=2, show_every=None, callbacks=[d])
    assert d.epochs == [0, 1]


@pytest.mark.parametrize("bad", [[print], ["progress"], 3, [None]])
def test_callbacks_must_be_callbacks(vdp_data, bad):
    with pytest.raises(TypeError, match="callbacks as Callback objects"):
        train(VDP(0.1), vdp_data, epochs=1, callbacks=bad)
    with pytest.raises(TypeError, match="fit needs callbacks as Callback objects"):
        fit(VDP(0.1), vdp_data, callbacks=bad)


def test_returning_true_stops_early(vdp_data):
    rec = Recorder(stop_at=2)
    h = train(VDP(0.1), vdp_data, epochs=8, show_every=None, callbacks=[rec])
    assert h.epochs == 3 and len(h.params["mu"]) == 3 and h.stop_reason == "early stop"
    assert rec.log[-1] == ("rec", "end", "early stop")


def test_setting_state_stop_stops_early(vdp_data):
    class Flag(Callback):
        def on_epoch_end(self, state): state.stop = state.epoch == 1
    h = train(VDP(0.1), vdp_data, epochs=8, show_every=None, callbacks=[Flag()])
    assert (h.epochs, h.stop_reason) == (2, "early stop")


def test_a_stop_on_the_last_epoch_is_a_completed_run(vdp_data):
    h = train(VDP(0.1), vdp_data, epochs=3, show_every=None, callbacks=[Recorder(stop_at=2)])
    assert (h.epochs, h.stop_reason) == (3, "completed")


def test_every_callback_sees_the_epoch_that_stops(vdp_data):
    log = []
    train(VDP(0.1), vdp_data, epochs=8, show_every=None, callbacks=[Recorder("a", log, stop_at=1), Recorder("b", log)])
    assert ("b", "epoch", 1) in log and ("b", "epoch", 2) not in log


def test_on_fit_end_runs_on_keyboard_interrupt(vdp_data):
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        train(VDP(0.1), vdp_data, epochs=8, show_every=None, callbacks=[rec, Raise(1)])
    assert rec.log[-1] == ("rec", "end", "interrupted")
    assert [e for _, kind, e in rec.log if kind == "epoch"] == [0, 1]


def test_on_fit_end_runs_on_divergence():
    data = create_sim_dataset(LotkaVolterra(), torch.arange(0.0, 10.0, 0.1), initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)
    rec = Recorder()
    with pytest.raises(DivergenceError) as err:
        train(LotkaVolterra(alpha=50.0), data, step_size=1.0, show_every=None, callbacks=[rec])
    assert rec.log[-1][:2] == ("rec", "end") and rec.log[-1][2].startswith("diverged:")
    assert err.value.history.stop_reason.startswith("diverged:")


def test_big_models_report_no_params(nde_data):
    rec = Recorder()
    train(NeuralDiffEq(2), nde_data, epochs=2, show_every=None, callbacks=[rec])
    assert [s["params"] for s in rec.states] == [{}, {}]


# ---------------------------------------------------------------- show_every and save_plots_every are unchanged

def test_show_every_prints_as_before_and_before_other_callbacks(vdp_data, capsys):
    class Say(Callback):
        def on_epoch_end(self, state): print(f"callback {state.epoch}")
    h = train(VDP(0.1), vdp_data, epochs=5, show_every=2, seed=0, callbacks=[Say()])
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Loss at 0: {h.loss[0]}", "callback 0", "callback 1", f"Loss at 2: {h.loss[2]}", "callback 2", "callback 3",
                   f"Loss at 4: {h.loss[4]}", "callback 4"]


def test_show_every_none_prints_nothing(vdp_data, capsys):
    train(VDP(0.1), vdp_data, epochs=3, show_every=None)
    assert capsys.readouterr().out == ""


def test_save_plots_every_still_writes_the_snapshots(vdp_data, tmp_path):
    train(VDP(0.1), vdp_data, epochs=5, show_every=None, save_plots_every=2, model_name="vdp", plot_dir=tmp_path/"a"/"b")
    assert sorted(p.name for p in (tmp_path/"a"/"b").iterdir()) == ["0_vdp_fit_plot.png", "2_vdp_fit_plot.png", "4_vdp_fit_plot.png"]


# ---------------------------------------------------------------- built-in callbacks

def test_plot_snapshots_in_train(vdp_data, tmp_path):
    train(VDP(0.1), vdp_data, epochs=4, show_every=None, callbacks=[PlotSnapshots(3, tmp_path/"snaps", model_name="m")])
    assert sorted(p.name for p in (tmp_path/"snaps").iterdir()) == ["0_m_fit_plot.png", "3_m_fit_plot.png"]
    assert all(p.stat().st_size > 1000 for p in (tmp_path/"snaps").iterdir())


def test_plot_snapshots_in_fit(lv_data, tmp_path):
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, callbacks=[PlotSnapshots(1, tmp_path, model_name="lm")])
    assert len(list(tmp_path.glob("*_lm_fit_plot.png"))) == r.iterations


@pytest.mark.parametrize("every,folder,exc,match", [(0, "x", ValueError, "every as a positive integer"),
                                                    (1.5, "x", ValueError, "every as a positive integer"),
                                                    (1, 3, TypeError, "folder as a path")])
def test_plot_snapshots_checks_its_arguments(every, folder, exc, match):
    with pytest.raises(exc, match=match):
        PlotSnapshots(every, folder)


def test_progress_bar_in_train_to_a_file(vdp_data):
    buf = io.StringIO()
    h = train(VDP(0.1), vdp_data, epochs=4, show_every=None, callbacks=[ProgressBar(file=buf)])
    text = buf.getvalue()
    assert "4/4" in text and f"loss={h.loss[-1]:.4g}" in text and "epoch" in text and text.startswith("\r")


def test_progress_bar_default_goes_to_stderr(vdp_data, capsys):
    train(VDP(0.1), vdp_data, epochs=3, show_every=None, callbacks=[ProgressBar()])
    captured = capsys.readouterr()
    assert "3/3" in captured.err and captured.out == ""
    train(VDP(0.1), vdp_data, epochs=3, show_every=None, callbacks=[ProgressBar(leave=False)])
    err = capsys.readouterr().err  # tqdm may have drawn 3/3 before closing, when an epoch took longer than its refresh interval
    assert "train:" in err and not err.rstrip("\r").split("\r")[-1].strip()  # drawn, then wiped: the last thing shown is blank


def test_progress_bar_in_fit(lv_data):
    buf = io.StringIO()
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, callbacks=[ProgressBar(file=buf)])
    assert f"{r.iterations}it" in buf.getvalue() and f"loss={r.history[-1]:.4g}" in buf.getvalue()


def test_progress_bar_continues_from_a_resumed_epoch(vdp_data, tmp_path):
    ck = tmp_path/"run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(VDP(0.1), vdp_data, epochs=5, show_every=None, seed=0, checkpoint=ck, callbacks=[Raise(2)])
    buf = io.StringIO()
    train(VDP(0.1), vdp_data, epochs=5, show_every=None, seed=0, checkpoint=ck, resume=True, callbacks=[ProgressBar(file=buf)])
    assert "2/5" in buf.getvalue() and "5/5" in buf.getvalue() and "1/5" not in buf.getvalue()


def test_progress_bar_checks_its_arguments():
    with pytest.raises(TypeError, match="leave as True or False"): ProgressBar(leave="yes")
    with pytest.raises(TypeError, match="text stream"): ProgressBar(file="log.txt")


def test_best_parameters(vdp_data):
    best, m = BestParameters(), VDP(0.1)
    h = train(m, vdp_data, epochs=8, lr=0.2, show_every=None, seed=0, callbacks=[best])
    i = h.loss.index(min(h.loss))
    assert (best.best_loss, best.best_epoch) == (min(h.loss), i)
    assert i < 7, "the test wants a run whose last epoch is not the best"
    assert m.mu.item() == h.params["mu"][-1]  # BestParameters alone does not touch the model
    best.restore(m)
    assert m.mu.item() == h.params["mu"][i]
    assert torch.equal(best.best_state["mu"], torch.tensor(h.params["mu"][i]))


def test_best_parameters_before_any_epoch():
    with pytest.raises(ValueError, match="nothing to restore"):
        BestParameters().restore(VDP(0.1))


def _drive(cb, losses, model):
    "Run a callback by hand over a sequence of losses; the model's parameter is set to the epoch number."
    state = TrainState(model)
    cb.on_fit_start(state)
    stopped = None
    for epoch, loss in enumerate(losses):
        with torch.no_grad(): model.mu.fill_(float(epoch))
        state.epoch, state.loss = epoch, loss
        if cb.on_epoch_end(state):
            stopped = epoch
            break
    state.extra["stop_reason"] = "early stop" if stopped is not None else "completed"
    cb.on_fit_end(state)
    return stopped


def test_early_stopping_counts_epochs_without_improvement():
    m = VDP(0.1)
    stopper = EarlyStopping(patience=3)
    assert _drive(stopper, [3.0, 2.0, 2.5, 2.4, 2.6, 1.0], m) == 4
    assert stopper.stopped_epoch == 4 and m.mu.item() == 1.0  # restored to epoch 1, the best


def test_early_stopping_min_delta_and_restore_best_false():
    m = VDP(0.1)
    # improvements smaller than min_delta do not count; without restore_best the model keeps the last parameters
    assert _drive(EarlyStopping(patience=2, min_delta=0.5, restore_best=False), [3.0, 2.9, 2.8, 1.0], m) == 2
    assert m.mu.item() == 2.0
    assert _drive(EarlyStopping(patience=2, min_delta=0.5), [3.0, 2.4, 2.3, 1.8, 1.7, 1.6], m) == 5
    assert m.mu.item() == 3.0


def test_early_stopping_in_train_restores_the_best_parameters(vdp_data):
    m, stopper = VDP(0.1), EarlyStopping(patience=2, min_delta=1e9)
    h = train(m, vdp_data, epochs=10, show_every=None, seed=0, callbacks=[stopper])
    assert (h.epochs, h.stop_reason, stopper.stopped_epoch) == (3, "early stop", 2)
    assert m.mu.item() == h.params["mu"][0] != h.params["mu"][-1]


def test_early_stopping_restores_after_a_noisy_run(vdp_data):
    m, stopper = VDP(0.1), EarlyStopping(patience=2)
    h = train(m, vdp_data, epochs=30, lr=0.3, show_every=None, seed=0, callbacks=[stopper])
    i = h.loss.index(min(h.loss))
    assert h.stop_reason == "early stop" and h.epochs == i + 3
    assert m.mu.item() == h.params["mu"][i]


@pytest.mark.parametrize("kw,exc,match", [(dict(patience=0), ValueError, "patience"), (dict(min_delta=-0.1), ValueError, "min_delta"),
                                          (dict(min_delta=float("nan")), ValueError, "min_delta"),
                                          (dict(restore_best=1), TypeError, "restore_best")])
def test_early_stopping_checks_its_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        EarlyStopping(**kw)


# ---------------------------------------------------------------- fit with callbacks

def test_fit_lm_calls_back_after_every_iteration(lv_data):
    rec = Recorder()
    m = LotkaVolterra(1.6, 1.1, 2.7, 1.2)
    r = fit(m, lv_data, callbacks=[rec])
    assert r.converged
    assert [s["epoch"] for s in rec.states] == list(range(r.iterations))
    assert {s["phase"] for s in rec.states} == {"lm"} and all(s["optimizer"] is None for s in rec.states)
    assert all(s["loss"] in r.history for s in rec.states) and rec.states[-1]["loss"] == r.history[-1]
    assert list(rec.states[-1]["params"]) == ["alpha", "beta", "delta", "gamma"]
    assert rec.states[-1]["params"] == pytest.approx(r.params, rel=1e-6)
    assert rec.log[0] == ("rec", "start", 0) and rec.log[-1] == ("rec", "end", "completed")


def test_fit_lm_stops_when_asked(lv_data):
    rec = Recorder(stop_at=1)
    m = LotkaVolterra(1.6, 1.1, 2.7, 1.2)
    r = fit(m, lv_data, callbacks=[rec])
    assert (r.converged, r.status, r.iterations, r.message) == (False, "stopped", 2, "early stop: a callback asked to stop")
    assert r.loss == rec.states[-1]["loss"]
    assert r.params == pytest.approx(rec.states[-1]["params"], rel=1e-6)  # the model holds the best start's parameters
    assert rec.log[-1] == ("rec", "end", "early stop")


def test_fit_adam_lbfgs_calls_back_per_step_and_evaluation(nde_data):
    rec = Recorder()
    r = fit(NeuralDiffEq(2), nde_data, adam_steps=6, max_iter=4, callbacks=[rec])
    phases = [s["phase"] for s in rec.states]
    assert phases[:6] == ["adam"]*6 and set(phases[6:]) == {"lbfgs"} and len(phases) == len(r.history)
    assert [s["loss"] for s in rec.states] == r.history
    assert isinstance(rec.states[0]["optimizer"], torch.optim.Adam) and isinstance(rec.states[-1]["optimizer"], torch.optim.LBFGS)
    assert rec.states[0]["params"] == {}  # more than 64 scalars


def test_fit_adam_lbfgs_stops_with_the_best_parameters(nde_data):
    torch.manual_seed(1)
    m = NeuralDiffEq(2)
    keep = BestParameters()
    r = fit(m, nde_data, adam_steps=50, max_iter=4, callbacks=[keep, Recorder(stop_at=3)])
    assert r.message.startswith("early stop") and len(r.history) == 4 and r.loss == min(r.history)
    got = {k: v.detach().clone() for k, v in m.state_dict().items()}
    keep.restore(m)  # BestParameters copied the model at the best iteration: fit left the model there too
    assert all(torch.equal(got[k], v) for k, v in m.state_dict().items())


def test_fit_lbfgs_with_callbacks_on_a_small_model(lv_data):
    rec = Recorder()
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, optimizer="lbfgs", max_iter=10, callbacks=[rec])
    assert {s["phase"] for s in rec.states} == {"lbfgs"} and [s["loss"] for s in rec.states] == r.history
    assert list(rec.states[0]["params"]) == ["alpha", "beta", "delta", "gamma"]


def test_fit_model_follows_the_iterate_while_callbacks_run(lv_data):
    m = LotkaVolterra(1.6, 1.1, 2.7, 1.2)
    seen = []
    class Look(Callback):
        def on_epoch_end(self, state): seen.append((param_dict(state.model), state.params))
    fit(m, lv_data, callbacks=[Look()])
    for in_model, reported in seen: assert in_model == pytest.approx(reported, rel=1e-6)
    assert len({tuple(p.values()) for p, _ in seen}) > 1


def test_fit_without_callbacks_is_unchanged(lv_data):
    a, b = LotkaVolterra(1.6, 1.1, 2.7, 1.2), LotkaVolterra(1.6, 1.1, 2.7, 1.2)
    ra, rb = fit(a, lv_data), fit(b, lv_data, callbacks=[Recorder()])
    assert ra.params == rb.params and ra.history == rb.history and ra.iterations == rb.iterations


def test_fit_on_fit_end_on_divergence_and_interrupt(lv_data):
    data = create_sim_dataset(LotkaVolterra(), torch.linspace(0, 10, 20), initial_conditions_default=torch.tensor([2.5, 2.5]), seed=0)
    rec = Recorder()
    with pytest.raises(DivergenceError, match="give no solution"):
        fit(LotkaVolterra(200.0, -5.0, 3.0, 1.0), data, callbacks=[rec])
    assert rec.log[-1][1] == "end" and rec.log[-1][2].startswith("diverged:")
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, callbacks=[rec, Raise(1)])
    assert rec.log[-1] == ("rec", "end", "interrupted")


def test_fit_with_early_stopping_and_progress(lv_data):
    buf = io.StringIO()
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, callbacks=[EarlyStopping(patience=1, min_delta=1e9), ProgressBar(file=buf)])
    assert r.message.startswith("early stop") and r.iterations == 2 and "2it" in buf.getvalue()


# ---------------------------------------------------------------- TensorBoard

def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    return ea


def test_tensorboard_logs_scalars_per_parameter_and_loss(lv_data, tmp_path):
    pytest.importorskip("tensorboard")
    m = LotkaVolterra(1.6, 1.1, 2.7, 1.2)
    h = train(m, lv_data, epochs=4, show_every=None, seed=0, callbacks=[TensorBoardLogger(tmp_path/"tb")])
    ea = _events(tmp_path/"tb")
    assert sorted(ea.Tags()["scalars"]) == ["loss", "params/alpha", "params/beta", "params/delta", "params/gamma"]
    assert ea.Tags()["images"] == []
    assert [e.step for e in ea.Scalars("loss")] == [0, 1, 2, 3]
    assert [e.value for e in ea.Scalars("loss")] == pytest.approx(h.loss, rel=1e-6)
    assert [e.value for e in ea.Scalars("params/gamma")] == pytest.approx(h.params["gamma"], rel=1e-6)


def test_tensorboard_figures_every(vdp_data, tmp_path):
    pytest.importorskip("tensorboard")
    train(VDP(0.1), vdp_data, epochs=5, show_every=None, callbacks=[TensorBoardLogger(tmp_path, figures_every=2)])
    ea = _events(tmp_path)
    assert [e.step for e in ea.Images("fit")] == [0, 2, 4]
    assert ea.Images("fit")[0].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"


def test_tensorboard_in_fit(lv_data, tmp_path):
    pytest.importorskip("tensorboard")
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, callbacks=[TensorBoardLogger(tmp_path)])
    assert len(_events(tmp_path).Scalars("params/alpha")) == r.iterations


def test_tensorboard_logger_checks_its_arguments(tmp_path):
    pytest.importorskip("tensorboard")
    with pytest.raises(ValueError, match="figures_every"): TensorBoardLogger(tmp_path, figures_every=0)
    with pytest.raises(TypeError, match="log_dir as a folder path"): TensorBoardLogger(3)


# ---------------------------------------------------------------- MLflow

@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch):
    "A local MLflow file store. MLflow 3 keeps it behind MLFLOW_ALLOW_FILE_STORE (mlflow-skinny has no SQLite store)."
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return f"file:{tmp_path}/mlruns"


def test_mlflow_logs_params_metrics_and_artifacts(vdp_data, mlflow_uri, tmp_path):
    from mlflow.tracking import MlflowClient
    m = VDP(0.1)
    logger = MLflowLogger(experiment="vdp-tests", run_name="five-epochs", tracking_uri=mlflow_uri, log_every=2)
    h = train(m, vdp_data, epochs=5, show_every=None, seed=3, callbacks=[logger])
    client = MlflowClient(mlflow_uri)
    run = client.get_run(logger.run_id)
    assert run.info.run_name == "five-epochs" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "vdp-tests"
    p = run.data.params
    assert (p["lr"], p["epochs"], p["batch_size"], p["method"], p["seed"]) == ("0.01", "5", "5", "auto", "3")
    assert float(p["init/mu"]) == pytest.approx(0.1)
    assert run.data.tags["stop_reason"] == "completed"
    loss = client.get_metric_history(logger.run_id, "loss")
    assert [x.step for x in loss] == [0, 2, 4] and [x.value for x in loss] == [h.loss[0], h.loss[2], h.loss[4]]
    assert len(client.get_metric_history(logger.run_id, "params/mu")) == 3
    assert sorted(a.path for a in client.list_artifacts(logger.run_id)) == ["final_params.json", "fit.png"]
    local = Path(client.download_artifacts(logger.run_id, "final_params.json", str(tmp_path)))
    assert json.loads(local.read_text()) == param_dict(m)


def test_mlflow_records_an_interrupted_run_and_reuses_the_experiment(vdp_data, mlflow_uri):
    from mlflow.tracking import MlflowClient
    first = MLflowLogger(experiment="shared", tracking_uri=mlflow_uri)
    train(VDP(0.1), vdp_data, epochs=1, show_every=None, callbacks=[first])
    second = MLflowLogger(experiment="shared", tracking_uri=mlflow_uri)
    with pytest.raises(KeyboardInterrupt):
        train(VDP(0.1), vdp_data, epochs=5, show_every=None, callbacks=[second, Raise(1)])
    client = MlflowClient(mlflow_uri)
    a, b = client.get_run(first.run_id), client.get_run(second.run_id)
    assert a.info.experiment_id == b.info.experiment_id
    assert b.info.status == "KILLED" and b.data.tags["stop_reason"] == "interrupted"


def test_mlflow_in_fit(lv_data, mlflow_uri):
    from mlflow.tracking import MlflowClient
    logger = MLflowLogger(tracking_uri=mlflow_uri)
    r = fit(LotkaVolterra(1.6, 1.1, 2.7, 1.2), lv_data, callbacks=[logger])
    client = MlflowClient(mlflow_uri)
    run = client.get_run(logger.run_id)
    assert run.data.params["optimizer"] == "lm" and run.data.params["method"] == "auto"
    assert len(client.get_metric_history(logger.run_id, "params/alpha")) == r.iterations
    assert client.get_experiment(run.info.experiment_id).name == "Default"


def test_mlflow_logger_checks_its_arguments():
    pytest.importorskip("mlflow")
    with pytest.raises(ValueError, match="log_every"): MLflowLogger(log_every=0)
    with pytest.raises(TypeError, match="experiment as a str"): MLflowLogger(experiment=3)


# ---------------------------------------------------------------- missing extras

def test_tensorboard_missing_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install 'paramfittorchdemo\[logging\]'"):
        TensorBoardLogger(tmp_path)


def test_mlflow_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportError, match=r"pip install 'paramfittorchdemo\[logging\]'"):
        MLflowLogger()


def test_the_rest_works_without_the_extras(monkeypatch, vdp_data):
    for name in ("tensorboard", "torch.utils.tensorboard", "mlflow"): monkeypatch.setitem(sys.modules, name, None)
    h = train(VDP(0.1), vdp_data, epochs=2, show_every=None, callbacks=[EarlyStopping(), BestParameters(), ProgressBar(file=io.StringIO())])
    assert h.epochs == 2
