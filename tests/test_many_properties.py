"""Property tests of fit_many, estimate_many and ManyFits: any wrong argument is a TypeError or ValueError that names it (never a raw
internal error), and a ManyFits row comes by position, id or slice, or a clear refusal (issue 19)."""
import csv
import math

import numpy as np
import pytest
import torch

from paramfittorchdemo import LotkaVolterra, Observations, SimODEData, create_sim_dataset
from paramfittorchdemo.many import ManyFits, estimate_many, fit_many

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST = settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
TS = torch.linspace(0, 1, 5)
NAMES = ["alpha", "beta", "delta", "gamma"]


@pytest.fixture(scope="module")
def tiny():
    "Two datasets of one short trajectory each: a fit that is not refused takes a fraction of a second."
    return [create_sim_dataset(LotkaVolterra(), TS, num_samples=1, sigma_noise=0.05, initial_conditions_default=torch.tensor([2.5, 2.5]),
                               seed=s) for s in range(2)]


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
TENSORS = st.builds(lambda shape, dtype, fill: torch.full(shape, fill).to(dtype),
                    st.lists(st.integers(0, 3), max_size=3).map(tuple),
                    st.sampled_from([torch.float64, torch.float32, torch.int64, torch.bool, torch.complex64]),
                    st.sampled_from([0.0, 1.0, -1.0, 0.5, math.nan, math.inf]))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(), FLOATS, st.text(max_size=4), st.binary(max_size=3),
                    st.complex_numbers(max_magnitude=3), st.just(np.float32(0.5)), st.just(np.int64(2)))
BAD = st.recursive(st.one_of(SCALARS, TENSORS, st.builds(np.array, st.lists(FLOATS, max_size=3))),
                   lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner), st.sets(st.integers(0, 3), max_size=2),
                                           st.dictionaries(st.one_of(st.sampled_from(NAMES + ["zeta"]), st.text(max_size=2)), inner,
                                                           max_size=2)),
                   max_leaves=4)

# each argument of fit_many, and words its refusal contains
ARGUMENTS = {"starts": "starts", "params": "param", "weights": "weights", "method": "method", "rtol": "rtol", "atol": "atol",
             "dtype": "dtype", "max_iter": "max_iter", "xtol": "xtol", "ftol": "ftol", "max_steps": "max_steps", "max_time": "max_time",
             "horizons": "horizons", "level": "level", "chunk_size": "chunk_size", "backend": "backend", "address": "address",
             "max_retries": "max_retries", "ray_options": "ray_options", "progress": "progress", "dataset_col": "dataset_col", "t0": "t0",
             "y0": "y0"}


@FAST
@given(name=st.sampled_from(sorted(ARGUMENTS)), value=BAD)
def test_any_wrong_argument_is_named_in_a_type_or_value_error(tiny, name, value):
    "fit_many either fits (the value happens to be legal) or refuses it, naming the argument; never a raw error from inside."
    assume(not (name == "backend" and value == "ray"))  # a legal value that would start Ray
    kw = {"max_iter": 1, "horizons": None, name: value}
    try: res = fit_many(LotkaVolterra(), tiny, **kw)
    except (TypeError, ValueError) as e:
        assert ARGUMENTS[name] in str(e) and type(e).__module__ == "builtins", f"{name}={value!r}: {type(e).__name__}: {e}"
        return
    assert isinstance(res, ManyFits) and len(res) == 2 and all(isinstance(m, str) for m in res.message)


@FAST
@given(name=st.sampled_from(["rk4", "euler", "dopri5", "bosh3"]), tol=st.one_of(FLOATS, st.integers(-1, 1), st.none()),
       step=st.one_of(st.none(), FLOATS, st.integers(-1, 1), st.text(max_size=2)))
def test_solver_options_of_every_method(tiny, name, step, tol):
    try: res = fit_many(LotkaVolterra(), tiny, method=name, step_size=step, rtol=tol, max_iter=1, horizons=None)
    except (TypeError, ValueError) as e:
        assert any(w in str(e) for w in ("step_size", "rtol", "max_steps")), str(e)  # (a grid finer than the step budget)
        return
    assert len(res) == 2


DATASETS = st.one_of(BAD, st.lists(st.one_of(BAD, st.just("tiny")), min_size=0, max_size=3),
                     st.dictionaries(st.text(max_size=2), st.one_of(BAD, st.just("tiny")), max_size=2))


@FAST
@given(datasets=DATASETS)
def test_any_wrong_datasets_are_refused(tiny, datasets):
    "Lists and dicts whose items are no SimODEData, empty ones, single values: each refused with what was wrong."
    def real(x): return tiny[0] if isinstance(x, str) and x == "tiny" else x
    if isinstance(datasets, list): datasets = [real(d) for d in datasets]
    if isinstance(datasets, dict): datasets = {k: real(v) for k, v in datasets.items()}
    try: res = fit_many(LotkaVolterra(), datasets, max_iter=1, horizons=None)
    except (TypeError, ValueError) as e:
        assert "dataset" in str(e), str(e)
        return
    assert len(res) == len(datasets)  # only lists or dicts of SimODEData get here


@FAST
@given(model=st.one_of(BAD, st.sampled_from(["linear", "relu", "three states", "no parameters"])))
def test_any_wrong_model_is_refused(tiny, model):
    "Not a module, a module not called as model(t, y), without parameters, or of another state size than the data."
    datasets = [SimODEData(TS, torch.ones(1, 5, 3))]*2 if isinstance(model, str) and model == "three states" else tiny
    if isinstance(model, str):
        model = {"linear": torch.nn.Linear(2, 2), "relu": torch.nn.ReLU(), "three states": LotkaVolterra(),
                 "no parameters": LotkaVolterra().requires_grad_(False)}.get(model, model)
    with pytest.raises((TypeError, ValueError)) as err: fit_many(model, datasets, max_iter=1, horizons=None)
    assert any(w in str(err.value) for w in ("model(t, y)", "as a torch.nn.Module", "state", "no trainable parameters")), str(err.value)


ESTIMATE_OPTIONS = ["method", "rtol", "atol", "step_size", "max_iter", "xtol", "ftol", "max_steps", "max_time", "loss", "shooting",
                    "continuity", "horizons", "initial_conditions", "weights", "ic_positive", "verbose", "params", "observe", "y0",
                    "starts", "chunk_size", "backend", "progress"]


@settings(FAST, max_examples=30)
@given(name=st.sampled_from(ESTIMATE_OPTIONS), value=BAD)
def test_estimate_many_options(tiny, name, value):
    "A wrong option is refused before any dataset, or fails every dataset alike (raised), or is the error of some datasets only."
    assume(not (name == "backend" and value == "ray"))
    obs = [Observations.from_sim(d) for d in tiny]
    try: res = estimate_many(LotkaVolterra(), obs, **{name: value, "max_iter": 3} if name != "max_iter" else {name: value})
    except (TypeError, ValueError) as e:
        assert type(e).__module__ == "builtins" and str(e), repr(e)
        return
    assert len(res) == 2 and all(s != "error" or m.startswith("error: ") for s, m in zip(res.status, res.message))


def table(ids: list) -> ManyFits:
    "A ManyFits of len(ids) rows, without fitting."
    D = len(ids)
    g = torch.Generator().manual_seed(D)
    p = torch.rand(D, 2, generator=g, dtype=torch.float64)
    return ManyFits(ids=ids, names=["a", "b"], params=p, stderr=p/10, lower=p - 0.2, upper=p + 0.2, loss=p[:, 0], status=["converged"]*D,
                    message=[f"converged: {i}" for i in ids], iterations=torch.arange(D), seconds=0.5)


IDS = st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6, unique=True)
KEYS = st.one_of(st.integers(-8, 8), st.text(max_size=5), st.slices(8), FLOATS, st.none(), st.booleans(), st.binary(max_size=2),
                 st.lists(st.integers(0, 2), max_size=2), st.tuples(st.integers(0, 1)), st.just(np.int64(1)), st.just(torch.tensor(0)),
                 st.just(torch.tensor([0, 1])))


@settings(FAST, max_examples=200)
@given(ids=IDS, key=KEYS)
def test_rows_by_position_id_or_slice(ids, key):
    res, D = table(ids), len(ids)
    if isinstance(key, slice):
        if key.step == 0:
            with pytest.raises(ValueError, match="nonzero step"): res[key]
            return
        part, rows = res[key], list(range(D))[key]
        assert part.ids == [ids[r] for r in rows] and torch.equal(part.params, res.params[rows]) and len(part) == len(rows)
        return
    if isinstance(key, str):
        if key in ids: assert res[key]["dataset"] == key and res[key]["a"] == res.params[ids.index(key), 0].item()
        else:
            with pytest.raises(ValueError, match="no dataset is named"): res[key]
        return
    position = int(key) if isinstance(key, (int, np.integer)) and not isinstance(key, bool) else (
        int(key) if isinstance(key, torch.Tensor) and key.numel() == 1 else None)
    if position is None:
        with pytest.raises(TypeError, match=r"ManyFits\[index\] needs the index as a dataset.s id"): res[key]
    elif -D <= position < D: assert res[key]["dataset"] == ids[position]
    else:
        with pytest.raises(IndexError, match=rf"ManyFits\[index\]: there are {D} datasets"): res[key]


@settings(FAST, max_examples=60)
@given(ids=IDS)
def test_to_csv_writes_any_ids_or_refuses_them(tmp_path, ids):
    res = table(ids)
    path = tmp_path/"fits.csv"
    if any("\x00" in i or any(0xD800 <= ord(c) <= 0xDFFF for c in i) for i in ids):
        with pytest.raises(ValueError, match="ManyFits.to_csv cannot write"): res.to_csv(path)
        return
    res.to_csv(path)
    with open(path, newline="", encoding="utf-8") as f: rows = list(csv.reader(f))
    assert rows[0][:2] == ["dataset", "a"] and [r[0] for r in rows[1:]] == ids
    assert res.to_dict()["dataset"] == ids and [r["dataset"] for r in res] == ids
