"""Property tests of train's checkpoints: damaged files are refused with a ValueError before anything changes, an unwritable path before
the first epoch, and a write that fails mid-run keeps the History (issue 19)."""
import copy
import os

import pytest
import torch

import paramfittorchdemo.checkpoints as checkpoints
from paramfittorchdemo import VDP, Callback, create_sim_dataset, train
from paramfittorchdemo.checkpoints import CheckpointError, load_checkpoint, save_checkpoint

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
RUN = dict(epochs=3, show_every=None, seed=2, batch_size=5)


@pytest.fixture(scope="module")
def data():
    return create_sim_dataset(VDP(0.3), torch.linspace(0.0, 2.0, 6), num_samples=6, sigma_noise=0.01, seed=0)


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    "A real checkpoint after 2 of 3 epochs, as train wrote it."
    path = tmp_path_factory.mktemp("ck")/"run.pt"
    train(VDP(0.1), data, **{**RUN, "epochs": 2}, checkpoint=path)
    return load_checkpoint(path)


def paths(obj, prefix=()) -> list:
    "Every key path into nested dicts (and the first two entries of lists: the generators' long states), up to depth 4."
    out = []
    if len(prefix) < 4:
        items = obj.items() if isinstance(obj, dict) else list(enumerate(obj))[:2] if isinstance(obj, list) else []
        for k, v in items:
            out.append(prefix + (k,))
            out += paths(v, prefix + (k,))
    return out


def resume_refuses_or_goes_on(path, data):
    "train(resume=True) from a damaged file: a clear ValueError that leaves the model as it was, or a complete run."
    model = VDP(0.7)
    try: h = train(model, data, **RUN, checkpoint=path, resume=True)
    except ValueError as e:
        msg = str(e)
        assert str(path) in msg and ("resume=False" in msg or "start afresh" in msg or "epochs=" in msg), msg
        assert model.mu.item() == pytest.approx(0.7)  # nothing was loaded
        return
    assert h.epochs == 3 and len(h.loss) == 3


WRONG = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(), st.text(max_size=3), st.just([]), st.just({}),
                  st.just([1, "x"]), st.just(torch.zeros(2)), st.just(torch.zeros((), dtype=torch.uint8)))


@settings(FAST, max_examples=int(os.environ.get("CK_EXAMPLES", 80)))
@given(data_=st.data())
def test_a_field_lost_or_of_the_wrong_kind_is_refused(tmp_path, data, saved, data_):
    "Before: a checkpoint with the format marker but a missing field raised KeyError: 'options'."
    state = copy.deepcopy(saved)
    where = data_.draw(st.sampled_from(sorted(paths(state), key=str)))
    parent = state
    for k in where[:-1]: parent = parent[k]
    if data_.draw(st.booleans()) and isinstance(parent, dict): del parent[where[-1]]
    else: parent[where[-1]] = data_.draw(WRONG)
    path = tmp_path/"run.pt"
    save_checkpoint(path, state)
    resume_refuses_or_goes_on(path, data)


@FAST
@given(cut=st.floats(0.0, 0.999))
def test_a_truncated_file_is_refused(tmp_path, data, saved, cut):
    path = tmp_path/"run.pt"
    save_checkpoint(path, saved)
    raw = path.read_bytes()
    path.write_bytes(raw[:int(cut*len(raw))])
    with pytest.raises(ValueError, match="not a valid checkpoint|damaged"): train(VDP(0.7), data, **RUN, checkpoint=path, resume=True)


def test_the_reported_case_a_marker_without_fields(tmp_path, data):
    path = save_checkpoint(tmp_path/"run.pt", {"format": "paramfittorchdemo.train", "version": 1})
    with pytest.raises(ValueError, match="is damaged: it has no field 'epoch'"): train(VDP(0.7), data, **RUN, checkpoint=path, resume=True)


def test_a_damaged_optimizer_state_leaves_model_optimizer_and_generators_as_they_were(tmp_path, data, saved):
    state = copy.deepcopy(saved)
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(4)  # mu is a scalar
    path = save_checkpoint(tmp_path/"run.pt", state)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    model = VDP(0.7)
    with pytest.raises(ValueError, match="'exp_avg' of a parameter of shape"): train(model, data, **RUN, checkpoint=path, resume=True)
    assert model.mu.item() == pytest.approx(0.7) and torch.equal(torch.get_rng_state(), before)


class Epochs(Callback):
    "Counts the epochs that ran."
    def __init__(self): self.n = 0
    def on_epoch_end(self, state): self.n += 1


def unwritable(tmp_path, kind: str):
    "A checkpoint path that cannot be written, of the given kind."
    (tmp_path/"file").write_text("x")
    (tmp_path/"folder").mkdir(exist_ok=True)
    return {"parent is a file": tmp_path/"file"/"run.pt", "grandparent is a file": tmp_path/"file"/"sub"/"run.pt",
            "a folder": tmp_path/"folder", "name too long": tmp_path/("x"*300), "empty": ""}[kind]


@FAST
@given(kind=st.sampled_from(["parent is a file", "grandparent is a file", "a folder", "name too long", "empty"]),
       resume=st.booleans(), every=st.integers(1, 3))
def test_an_unwritable_checkpoint_is_refused_before_the_first_epoch(tmp_path, data, kind, resume, every):
    "Before: train ran an epoch, then failed with FileExistsError, and the History was lost."
    path, seen = unwritable(tmp_path, kind), Epochs()
    with pytest.raises(ValueError, match="cannot write checkpoint|checkpoint as a file path") as err:
        train(VDP(0.1), data, **RUN, checkpoint=path, checkpoint_every=every, resume=resume, callbacks=[seen])
    assert seen.n == 0 and (str(path) in str(err.value) or kind == "empty")
    assert "pass a path" in str(err.value) or "e.g." in str(err.value) or kind == "empty"


@FAST
@given(bad=st.one_of(st.integers(), st.floats(), st.lists(st.text(max_size=2), max_size=2), st.binary(max_size=3)))
def test_a_checkpoint_that_is_no_path_is_refused(data, bad):
    with pytest.raises(TypeError, match="train needs checkpoint as a file path"): train(VDP(0.1), data, **RUN, checkpoint=bad)


@FAST
@given(fail_at=st.integers(1, 3), every=st.integers(1, 2), error=st.sampled_from([OSError(28, "No space left on device"),
                                                                                  PermissionError(13, "Permission denied")]))
def test_a_write_that_fails_mid_run_keeps_the_history(tmp_path, data, monkeypatch, fail_at, every, error):
    "The failure raises a CheckpointError (an OSError) that carries the run's History; the file keeps the last checkpoint written."
    path = tmp_path/f"run-{fail_at}-{every}.pt"
    if path.exists(): path.unlink()
    ref_model = VDP(0.1)
    ref = train(ref_model, data, **RUN)
    real = checkpoints.save_checkpoint
    def failing(p, state):
        if state["epoch"] >= fail_at: raise error
        return real(p, state)
    monkeypatch.setattr(checkpoints, "save_checkpoint", failing)
    model = VDP(0.1)
    with pytest.raises(CheckpointError, match="could not write its checkpoint") as err:
        train(model, data, **RUN, checkpoint=path, checkpoint_every=every)
    monkeypatch.undo()
    e = next(k for k in range(fail_at, RUN["epochs"] + 1) if k % every == 0 or k == RUN["epochs"])  # the first write that fails
    h = err.value.history
    assert h.epochs == e and h.loss == ref.loss[:e] and h.stop_reason == "failed: CheckpointError"
    assert model.mu.item() == ref.params["mu"][e - 1]  # the model has the parameters of the last epoch run
    assert ".history" in str(err.value) and "resume=True" in str(err.value) and isinstance(err.value, OSError)
    on_disk = [k for k in range(1, e) if k % every == 0]
    if on_disk: assert load_checkpoint(path)["epoch"] == on_disk[-1] and f"epoch {on_disk[-1]}" in str(err.value)
    else: assert not path.exists() and "no checkpoint of this run was written" in str(err.value)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
