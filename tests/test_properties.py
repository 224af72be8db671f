"""Property tests over the whole public API: every public callable, called validly but for ONE wrong argument, either works (a finite,
well-shaped result) or refuses with a ValueError or TypeError whose message names that argument; where a contract documents one of the
library's own errors (SolverError, DivergenceError, ModelError) that may come instead. Never a raw internal error: ZeroDivisionError,
KeyError, IndexError, AttributeError, torch's RuntimeError or LinAlgError."""
import inspect
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from functools import cache
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import nn

import paramfittorchdemo as pf
from paramfittorchdemo import (ADAPTIVE_METHODS, FIXED_STEP_METHODS, BestParameters, Callback, DivergenceError, Estimate, FitResult,
                               FunctionODE, History, HybridODE, LotkaVolterra, ManyFits, ODEBlock, Observations, Param, PolynomialODE,
                               Profile, SimODEData, SolverError, TrainState)
from paramfittorchdemo.callbacks import end_hooks, run_hooks
from paramfittorchdemo.models import ModelError
from paramfittorchdemo.plotting import fig_ax

PROPERTY = settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
RAW = (ZeroDivisionError, KeyError, IndexError, AttributeError, torch.linalg.LinAlgError, OverflowError, AssertionError,
       NotImplementedError)

@pytest.fixture(autouse=True, scope="module")
def _in_a_temporary_folder():
    "Relative file names ('', '.', 'abc') that the properties try land in a folder of their own."
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try: yield
        finally: os.chdir(here)

# ---------------------------------------------------------------- tiny problems, built once
TS = torch.linspace(0, 1, 5)
Y0 = torch.tensor([[1.0, 0.8], [0.9, 1.1]])


@cache
def _data() -> SimODEData:
    return pf.create_sim_dataset(LotkaVolterra(), TS, num_samples=2, sigma_noise=0.01, initial_conditions_default=torch.tensor([1.0, 1.0]),
                                 seed=0)

def data() -> SimODEData: return _data()
def obs() -> Observations: return Observations.from_sim(_data())
def start() -> LotkaVolterra: return LotkaVolterra(1.6, 1.1, 2.7, 1.2)

@cache
def _estimate() -> Estimate:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pf.estimate(start(), obs(), method="rk4", max_iter=5, horizons=None)

@cache
def _fit() -> FitResult: return pf.fit(start(), data(), method="rk4", max_iter=3, horizons=None)

@cache
def _many() -> ManyFits: return pf.fit_many(start(), [data(), data()], max_iter=3, horizons=None, progress=False)

@cache
def _profile() -> Profile: return _estimate().profile("alpha", n=3, progress=False)

@cache
def _poly() -> PolynomialODE:
    return PolynomialODE(2, 2, coefficients=torch.tensor([[0.0, 1.0, 0.0, 0.0, -1.0, 0.0], [0.0, 0.0, -1.0, 0.0, 1.0, 0.0]]))

def history() -> History: return History(loss=[1.0, 0.5, 0.25], params={"a": [1.0, 1.1, 1.2]}, seconds=0.1, stop_reason="completed")
def state() -> TrainState: return TrainState(LotkaVolterra(), epoch=0, loss=1.0, history=history(), data=data())
def tmpfile(name: str) -> str: return os.path.join(tempfile.mkdtemp(prefix="pf-props-", dir=os.getcwd()), name)  # in the module's folder

# ---------------------------------------------------------------- user-written models that are wrong in one way each
class Wide(nn.Module):
    "Returns twice as many derivatives as states: a wrong shape under a declared dim."
    dim = 2
    def __init__(self): super().__init__(); self.k = nn.Parameter(torch.tensor(1.0))
    def forward(self, t, y): return torch.cat([-self.k*y, y], -1)

class NoDim(nn.Module):
    "Declares no dim and returns one derivative for two states."
    def __init__(self): super().__init__(); self.k = nn.Parameter(torch.tensor(1.0))
    def forward(self, t, y): return -self.k*y[..., :1]

class Raises(nn.Module):
    dim = 2
    def __init__(self): super().__init__(); self.k = nn.Parameter(torch.tensor(1.0))
    def forward(self, t, y): raise KeyError("no such state")

class Frozen(nn.Module):
    "No trainable parameters."
    dim = 2
    def forward(self, t, y): return -y

def _bad_models() -> list:
    return [Wide(), NoDim(), Raises(), Frozen(), nn.Linear(2, 2), nn.Module(), pf.NeuralDiffEq(3), pf.Lorenz(),
            FunctionODE(lambda t, y, k: (-k*y)[..., :1], dim=2, k=1.0),  # too few derivatives
            FunctionODE(lambda t, y, k: (-k*y).sum(), dim=2, k=1.0),  # a scalar
            FunctionODE(lambda t, y, k: (-k*y).detach().long(), dim=2, k=1.0),  # integers
            FunctionODE(lambda t, y, k: (-k*y).to(torch.complex128), dim=2, k=1.0),  # complex derivatives of real states
            FunctionODE(lambda t, y, k: [-k*y], dim=2, k=1.0),  # not a tensor
            FunctionODE(lambda t, y, k: -k*y*math.nan, dim=2, k=1.0),  # NaN
            FunctionODE(lambda t, y, k: -k*y/0.0, dim=2, k=1.0),  # inf (and NaN at 0)
            FunctionODE(lambda t, y, k: 1/0, dim=2, k=1.0),  # raises inside
            FunctionODE(lambda y, k: -k*y, dim=2, k=1.0),  # the wrong signature
            lambda t, y: -y, "LotkaVolterra", LotkaVolterra, None, 3]

# ---------------------------------------------------------------- strategies: one kind of wrong value per kind of argument
NAN, INF = math.nan, math.inf
WRONG = [None, "abc", "", b"x", object(), 1j, [1, "a"], {"a": 1}, (), print, torch.tensor([1.0, 2.0])]
NONFINITE = [NAN, INF, -INF, torch.tensor(NAN), np.float64(NAN), -1e300, 1e300]
REAL = NONFINITE + [True, "1.0", 1j, torch.tensor([1.0, 2.0]), [1.0], None]
POSITIVE = REAL + [0, 0.0, -1, -0.5, -INF]
COUNT = [0, -1, -7, 1.5, 2.0, NAN, INF, True, False, "2", None, torch.tensor(2), torch.tensor(2.5), np.float64(2.0), [2]]
FLAG = [0, 1, 2, "True", "no", None, NAN, torch.tensor(True), np.array([True, False]), [True]]
CHOICE = ["", "nope", None, 1, b"rk4", ["rk4"], ("dopri5",), "DOPRI5", " rk4", NAN]
DTYPE = [torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.bool, torch.complex64, torch.complex128, "float64", np.float64,
         float, 5]
NAMES = ["x", ["a"], [1, 2], ["a", "a"], ["", "b"], ["a", "b", "c"], 5, {"a": 1}, [None, "b"]]
PATH = [1, None, object(), b"\x00", "", "a\x00b", "/proc/no/such/dir/x.pt", tempfile.gettempdir(), 1.5, ["a.pt"]]
AX = [object(), "ax", 1, [None], True]
INDEX = [-100, 100, 1.5, "nope", None, True, [0], NAN, torch.tensor(0), (0, 1)]
CALLBACKS = [[1], "cb", Callback, object(), [None], 5, [print]]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.complex64]
SPECIAL = [0.0, -1.0, 1e-300, 1e30, 1e300, NAN, INF, -INF]

def _values(shape, dtype, fill, corrupt):
    "A tensor of `shape` and `dtype` filled with `fill`, with its first element set to `corrupt` (when not None)."
    x = torch.full(shape, fill, dtype=torch.float64)
    if corrupt is not None and x.numel(): x.view(-1)[0] = corrupt
    return x.to(dtype)

@st.composite
def tensors(draw, shape: tuple, lo: float = 0.1, hi: float = 2.0):
    "A tensor for an argument of `shape`: another shape, dtype or container, a NaN, inf or huge element, or values out of range."
    shapes = [shape, (), (0,), (0, *shape[1:]), (*shape[:-1], 0), (*shape, 1), shape[1:], (*shape[:-1], shape[-1] + 1)]
    s = draw(st.sampled_from(shapes))
    dtype = draw(st.sampled_from(DTYPES))
    fill = draw(st.one_of(st.floats(lo, hi), st.sampled_from(SPECIAL)))
    corrupt = draw(st.one_of(st.none(), st.sampled_from(SPECIAL)))
    x = _values(s, dtype, fill, corrupt)
    return draw(st.sampled_from([x, x.tolist(), x.numpy() if dtype not in (torch.bfloat16,) else x, x.T if x.ndim == 2 else x]))

@st.composite
def grids(draw, n: int = 5):
    "A time grid: too short, unsorted, repeated, non-finite, of another dtype or container, or on a huge span."
    m = draw(st.sampled_from([0, 1, 2, n]))
    t0, span = draw(st.sampled_from([0.0, -1.0, 1e300])), draw(st.sampled_from([1.0, 1e-300, 1e30, 1e300]))
    t = torch.linspace(0, 1, m, dtype=torch.float64)*span + t0
    t = draw(st.sampled_from([t, t.flip(0), torch.cat([t[:1], t]) if m else t]))
    corrupt = draw(st.one_of(st.none(), st.sampled_from([NAN, INF, -INF])))
    if corrupt is not None and m: t = t.clone(); t[-1] = corrupt
    t = t.to(draw(st.sampled_from(DTYPES)))
    return draw(st.sampled_from([t, t.tolist(), t[None], t.numpy() if t.dtype != torch.bfloat16 else t]))

def wrong(*extra): return st.one_of(st.sampled_from(WRONG), st.sampled_from(list(extra))) if extra else st.sampled_from(WRONG)

def bad_data():
    "Datasets of another kind, shape or content than a 2-state SimODEData."
    lorenz = pf.create_sim_dataset(pf.Lorenz(), TS, num_samples=2, initial_conditions_default=torch.tensor([1.0, 1.0, 1.0]), seed=0)
    d = _data()
    huge = SimODEData(TS, torch.stack(d.values).double()*1e300)
    half = SimODEData(TS.half(), torch.stack(d.values).half())
    ragged = SimODEData([TS, TS*2], d.values)
    return [lorenz, obs(), huge, half, ragged, torch.stack(d.values), list(d.values), (TS, d.values[0]), d[0]]

KINDS: dict[str, Callable[[], st.SearchStrategy]] = {
    "any": lambda: wrong(),
    "real": lambda: wrong(*REAL),
    "pos": lambda: wrong(*POSITIVE, 1e-300),
    "count": lambda: wrong(*COUNT),
    "count0": lambda: wrong(*[c for c in COUNT if c != 0], -1),
    "flag": lambda: wrong(*FLAG),
    "choice": lambda: wrong(*CHOICE),
    "method": lambda: wrong(*CHOICE, "scipy_solver", "euler", "implicit_adams"),
    "dtype": lambda: wrong(*DTYPE),
    "names": lambda: wrong(*NAMES),
    "path": lambda: wrong(*PATH),
    "ax": lambda: wrong(*AX),
    "index": lambda: wrong(*INDEX),
    "callbacks": lambda: wrong(*CALLBACKS),
    "model": lambda: st.sampled_from(_bad_models()),
    "data": lambda: st.one_of(wrong(), st.sampled_from(bad_data())),
    "ts": lambda: st.one_of(wrong(), grids()),
    "state": lambda: st.one_of(wrong(), tensors((2, 2))),
    "vector": lambda: st.one_of(wrong(), tensors((5,), lo=-2.0)),
    "table": lambda: st.one_of(wrong(), tensors((5, 2), lo=-2.0)),
    "params": lambda: wrong([("alpha", 1.0)], "alpha", 5, {"nope": 1.0}, {"alpha": "x"}, {"alpha": NAN}, {"alpha": INF},
                            {"alpha": Param(lower=5.0)}, {1: 1.0}, {"alpha": [1.0]},
                            {"alpha": torch.tensor([1.0, 2.0])}, {"alpha": True}),
    "weights": lambda: wrong("nope", {"y0": 1.0}, [1.0], [1.0, -1.0], [NAN, 1.0], [INF, 1.0], [0.0, 0.0], torch.ones(2, 2), ["a", "b"],
                             [True, True]),
    "starts": lambda: st.one_of(wrong(0, -1, 1.5, True), tensors((3, 4), lo=0.5)),
    "pair": lambda: wrong((1.0,), (1.0, 0.0), (0.0, NAN), (0.0, INF), (0.0, 1.0, 2.0), "ab", (0.0, "1"), [0.0, -1.0]),
    "callable": lambda: wrong(5, "f", nn.Tanh(), torch.tanh, lambda: None),
}

# ---------------------------------------------------------------- the registry: one valid, small, fast call per public callable
@dataclass
class Case:
    call: Callable  # call(**args): the public callable, with keyword arguments (positional ones by name, see `positional`)
    args: Callable[[], dict]  # the arguments of one valid call, built fresh for every example
    kinds: dict  # argument -> kind of wrong values it gets (a key of KINDS)
    check: Callable | None = None  # check(result, args) of a call that succeeded
    errors: tuple = ()  # the library's own errors this call documents (SolverError, DivergenceError, ...)
    exempt: str = ""  # why the callable has no arguments to check
    says: dict = field(default_factory=dict)  # argument -> the word its messages name it by, where that is not its name (`i`: index)

def fn(f, *positional):
    "Call f with the arguments named in `positional` by position and the rest by keyword."
    def call(**kw):
        args = [kw.pop(p) for p in positional if p in kw]
        return f(*args, **kw)
    return call

def method(obj: Callable, name: str, *positional):
    "Call a method of the object obj() (built fresh) with keyword arguments."
    return lambda **kw: fn(getattr(obj(), name), *positional)(**kw)

def finite(x) -> bool:
    "Every number in a tensor, array or float is finite."
    if isinstance(x, torch.Tensor): return bool(torch.isfinite(x).all())
    if isinstance(x, np.ndarray): return bool(np.isfinite(x).all())
    return math.isfinite(x)

def shaped(shape):
    "A finite tensor of `shape`; a callable shape is computed from the call's arguments."
    return lambda r, a: isinstance(r, torch.Tensor) and tuple(r.shape) == (shape(a) if callable(shape) else shape) and finite(r)

def is_a(cls):
    return lambda r, a: isinstance(r, cls)

def plotted(r, a) -> bool:
    from matplotlib.axes import Axes
    return isinstance(r, tuple) and len(r) == 2 and isinstance(r[1], Axes)

def fitted(r, a) -> bool: return isinstance(r, FitResult) and math.isfinite(r.loss) and all(map(math.isfinite, r.params.values()))
def estimated(r, a) -> bool: return isinstance(r, Estimate) and math.isfinite(r.ssr) and all(map(math.isfinite, r.params.values()))
def trained(r, a) -> bool: return isinstance(r, History) and r.epochs >= 1 and all(map(math.isfinite, r.loss))
def many(r, a) -> bool: return isinstance(r, ManyFits) and len(r) == 2
def trajectories(a) -> tuple: return (*torch.as_tensor(a["y0"]).shape[:-1], len(a["ts"]), 2)
def pair(r, a) -> bool: return len(r) == 2
def sized(n): return lambda r, a: len(r) == n

SOLVER = dict(method="rk4", step_size=0.25)
FAST_FIT = dict(max_iter=3, horizons=None)
LV = ("alpha", "beta", "delta", "gamma")

EXCEPTION = "an exception or warning class: the library raises it, with its message; there is nothing to check"
RECORD = "a result record that the library fills in; users read it (its methods are checked)"
FORWARD = ("a right-hand side's forward: the solvers call it millions of times; simulate, fit, estimate, train check the model's output "
           "at the boundary")
JACOBIAN = ("a right-hand side's Jacobian: the implicit solvers call it at every step, on states they made; simulate, fit, estimate, "
            "train check the model at the boundary")
HOOK = "a callback hook: train and fit call it with their own TrainState"

REGISTRY: dict[str, Case] = {
    # ---- solvers
    "SolverError": Case(None, None, {}, exempt=EXCEPTION),
    "FitWarning": Case(None, None, {}, exempt=EXCEPTION),
    "ModelError": Case(None, None, {}, exempt=EXCEPTION),
    "DivergenceError": Case(None, None, {}, exempt=EXCEPTION),
    "CheckpointError": Case(None, None, {}, exempt=EXCEPTION),
    "solver_options": Case(fn(pf.solver_options), lambda: dict(method="rk4", step_size=0.1, rtol=1e-6, atol=1e-8),
                           dict(method="method", step_size="pos", rtol="pos", atol="pos"), is_a(dict)),
    # ---- models
    "simulate": Case(fn(pf.simulate, "model", "y0", "ts"),
                     lambda: dict(model=LotkaVolterra(), y0=Y0, ts=TS, method="dopri5", max_steps=2000),
                     dict(model="model", y0="state", ts="ts", method="method", step_size="pos", rtol="pos", atol="pos", max_steps="count",
                          max_time="pos"), shaped(trajectories), errors=(SolverError,)),
    "VDP": Case(fn(pf.VDP), lambda: dict(mu=1.0), dict(mu="real"), is_a(nn.Module)),
    "LotkaVolterra": Case(fn(LotkaVolterra), lambda: dict(zip(LV, (1.5, 1.0, 3.0, 1.0))), dict.fromkeys(LV, "real"), is_a(nn.Module)),
    "Lorenz": Case(fn(pf.Lorenz), lambda: dict(sigma=10.0, rho=28.0, beta=2.0), dict.fromkeys(("sigma", "rho", "beta"), "real"),
                   is_a(nn.Module)),
    "NeuralDiffEq": Case(fn(pf.NeuralDiffEq), lambda: dict(dim=2), dict(dim="count"), is_a(nn.Module)),
    "param_dict": Case(fn(pf.param_dict), lambda: dict(model=LotkaVolterra()), dict(model="any"), is_a(dict)),
    "FunctionODE": Case(fn(FunctionODE, "f"), lambda: dict(f=lambda t, y, k: -k*y, dim=2, autonomous=True, trainable=True, k=0.5),
                        dict(f="callable", dim="count", autonomous="flag", trainable="flag", k="real"), is_a(nn.Module)),
    "VDP.forward": Case(None, None, {}, exempt=FORWARD),
    "LotkaVolterra.forward": Case(None, None, {}, exempt=FORWARD),
    "Lorenz.forward": Case(None, None, {}, exempt=FORWARD),
    "NeuralDiffEq.forward": Case(None, None, {}, exempt=FORWARD),
    "FunctionODE.forward": Case(None, None, {}, exempt=FORWARD),
    "VDP.jacobian": Case(None, None, {}, exempt=JACOBIAN),
    "LotkaVolterra.jacobian": Case(None, None, {}, exempt=JACOBIAN),
    "Lorenz.jacobian": Case(None, None, {}, exempt=JACOBIAN),
    # ---- hybrid
    "HybridODE": Case(fn(HybridODE, "known", "term"),
                      lambda: dict(known=LotkaVolterra(), term=None, hidden=4, depth=1, n_inputs=0, scale=1.0),
                      dict(known="model", term="model", hidden="count", depth="count", activation="callable", time_input="flag",
                           inputs="callable", n_inputs="count0", train_known="flag", scale="pos", dim="count"), is_a(nn.Module)),
    "HybridODE.forward": Case(None, None, {}, exempt=FORWARD),
    "HybridODE.unknown": Case(None, None, {}, exempt=FORWARD),
    "ODEBlock": Case(fn(ODEBlock, "func", "ts"), lambda: dict(func=LotkaVolterra(), ts=TS, method="rk4"),
                     dict(func="model", ts="ts", method="method", step_size="pos", rtol="pos", atol="pos", last_only="flag"),
                     is_a(nn.Module)),
    "ODEBlock.forward": Case(lambda block, y0: block(y0), lambda: dict(block=ODEBlock(LotkaVolterra(), TS), y0=Y0),
                             dict(y0="state"), shaped(lambda a: (*a["y0"].shape[:-1], 5, 2)), errors=(SolverError,)),
    # ---- data
    "SimODEData": Case(fn(SimODEData), lambda: dict(ts=TS, values=torch.stack(_data().values), true_model=None),
                       dict(ts="ts", values="state", true_model="model"), is_a(SimODEData)),
    "SimODEData.tensors": Case(method(data, "tensors"), dict, {}, pair),
    "SimODEData.__getitem__": Case(lambda index: data()[index], lambda: dict(index=1), dict(index="index"), pair,
                                   errors=(IndexError,)),  # the sequence protocol: iteration stops at an IndexError
    "create_sim_dataset": Case(fn(pf.create_sim_dataset, "model", "ts"),
                               lambda: dict(model=LotkaVolterra(), ts=TS, num_samples=2, sigma_noise=0.1,
                                            initial_conditions_default=torch.tensor([1.0, 1.0]), sigma_initial_conditions=0.1, seed=0,
                                            method="rk4", max_steps=2000),
                               dict(model="model", ts="ts", num_samples="count", sigma_noise="pos", initial_conditions_default="vector",
                                    sigma_initial_conditions="pos", seed="count0", generator="any", method="method", max_steps="count",
                                    max_time="pos"), is_a(SimODEData), errors=(SolverError,)),
    # ---- observations
    "Observations": Case(fn(Observations, "times", "values"),
                         lambda: dict(times=[TS, TS], values=list(_data().values), ids=["a", "b"], columns=["x", "y"], source="here"),
                         dict(times="ts", values="state", ids="names", columns="names", source="any", t0="real"), is_a(Observations)),
    "Observations.__getitem__": Case(lambda i: obs()[i], lambda: dict(i=0), dict(i="index"), pair, errors=(KeyError, IndexError),
                                     says=dict(i="index")),
    "Observations.padded": Case(method(obs, "padded"), dict, {}, sized(4)),
    "Observations.t0": Case(method(obs, "t0"), dict, {}, shaped((2,))),
    "Observations.subset": Case(method(obs, "subset"), lambda: dict(ids=["1", 0]), dict(ids="index"), is_a(Observations),
                                errors=(KeyError, IndexError)),  # an id that is not there, a position out of range: as __getitem__
    "Observations.until": Case(method(obs, "until"), lambda: dict(t_end=0.5), dict(t_end="real"), is_a(Observations)),
    "Observations.from_arrays": Case(fn(Observations.from_arrays),
                                     lambda: dict(ts=TS, ys=torch.stack(_data().values), ids=None, columns=None),
                                     dict(ts="ts", ys="state", ids="names", columns="names", t0="real"), is_a(Observations)),
    "Observations.from_sim": Case(fn(Observations.from_sim), lambda: dict(data=_data(), ids=None, columns=None),
                                  dict(data="data", ids="names", columns="names", t0="real"), is_a(Observations)),
    "Observations.to_dataframe": Case(method(obs, "to_dataframe"), lambda: dict(format="long", id_col="id", time_col="time", sep=":"),
                                      dict(format="choice", id_col="any", time_col="any", sep="any"), lambda r, a: len(r) > 0),
    "Observations.from_dataframe": Case(fn(Observations.from_dataframe), lambda: dict(df=obs().to_dataframe(), format="long"),
                                        dict(df="any", format="choice", id_col="any", time_col="any", columns="names", sep="any",
                                             source="any"), is_a(Observations)),
    "Observations.to_csv": Case(method(obs, "to_csv"), lambda: dict(path=tmpfile("o.csv"), format="long"),
                                dict(path="path", format="choice", id_col="any", time_col="any", sep="any", comment="any")),
    "Observations.from_csv": Case(fn(Observations.from_csv), lambda: dict(path=_csv(), format="long"),
                                  dict(path="path", format="choice", id_col="any", time_col="any", columns="names", sep="any",
                                       encoding="any", delimiter="any"), is_a(Observations)),
    "load_lynx_hare": Case(fn(pf.load_lynx_hare), dict, {}, is_a(Observations)),
    # ---- plotting
    "plot_time_series": Case(fn(pf.plot_time_series, "true_model", "fit_model", "data"),
                             lambda: dict(true_model=LotkaVolterra(), fit_model=start(), data=_data(), time_range=(0.0, 1.0), ax=None,
                                          dyn_var_idx=0, title="t"),
                             dict(true_model="model", fit_model="model", data="data", time_range="pair", ax="ax", dyn_var_idx="index",
                                  title="any"), plotted, errors=(SolverError,)),
    "plot_phase_plane": Case(fn(pf.plot_phase_plane, "true_model", "fit_model", "data"),
                             lambda: dict(true_model=LotkaVolterra(), fit_model=start(), data=_data(), time_range=(0.0, 1.0), ax=None,
                                          dyn_var_idx=(0, 1), title="t"),
                             dict(true_model="model", fit_model="model", data="data", time_range="pair", ax="ax", dyn_var_idx="index",
                                  title="any"), plotted, errors=(SolverError,)),
    "plot_history": Case(fn(pf.plot_history, "history"), lambda: dict(history=history(), ax=None, title="loss"),
                         dict(history="vector", ax="ax", title="any"), plotted),
    "plot_fit": Case(fn(pf.plot_fit, "t_obs", "y_obs", "t_fit", "y_fit", "lower", "upper"),
                     lambda: dict(t_obs=TS, y_obs=_data().values[0], t_fit=TS, y_fit=_data().values[0], lower=_data().values[0] - 0.1,
                                  upper=_data().values[0] + 0.1, columns=["x", "y"], band_label="band", ax=None, title="t", logy=False),
                     dict(t_obs="vector", y_obs="table", t_fit="vector", y_fit="table", lower="table", upper="table", columns="names",
                          band_label="any", ax="ax", title="any", logy="flag"), plotted),
    "plot_residuals": Case(fn(pf.plot_residuals, "t_obs", "residuals"),
                           lambda: dict(t_obs=TS, residuals=_data().values[0], columns=["x", "y"], ax=None, title="t", standardized=False),
                           dict(t_obs="vector", residuals="table", columns="names", ax="ax", title="any", standardized="flag"), plotted),
    "plot_traces": Case(fn(pf.plot_traces, "trace", "loss"), lambda: dict(trace={"a": [1.0, 1.1, 1.2]}, loss=[1.0, 0.5, 0.2], ax=None,
                                                                        relative=True),
                        dict(trace="params", loss="vector", ax="ax", relative="flag"), plotted),
    "plot_profile": Case(fn(pf.plot_profile, "values", "loss", "name"),
                         lambda: dict(values=torch.linspace(0, 1, 5), loss=torch.linspace(0, 1, 5)**2, name="a", threshold=3.841,
                                      estimate=0.5, interval=(0.1, 0.9), ax=None),
                         dict(values="vector", loss="vector", name="any", threshold="real", estimate="real", interval="pair", ax="ax"),
                         plotted),
    # ---- callbacks
    "History": Case(None, None, {}, exempt=RECORD),
    "History.to_dict": Case(method(history, "to_dict"), dict, {}, is_a(dict)),
    "History.to_dataframe": Case(method(history, "to_dataframe"), dict, {}, sized(3)),
    "History.to_json": Case(method(history, "to_json"), lambda: dict(path=tmpfile("h.json")), dict(path="path"), is_a(str)),
    "TrainState": Case(None, None, {}, exempt=RECORD),
    "Callback": Case(fn(Callback), dict, {}, is_a(Callback)),
    "PrintLoss": Case(fn(pf.PrintLoss), lambda: dict(every=2), dict(every="count"), is_a(Callback)),
    "PlotSnapshots": Case(fn(pf.PlotSnapshots), lambda: dict(every=2, folder=tmpfile("plots"), model_name="m"),
                          dict(every="count", folder="path", model_name="any"), is_a(Callback)),
    "ProgressBar": Case(fn(pf.ProgressBar), lambda: dict(leave=True, file=None), dict(leave="flag", file="any"), is_a(Callback)),
    "BestParameters": Case(fn(BestParameters), dict, {}, is_a(Callback)),
    "BestParameters.keep": Case(lambda state: BestParameters().keep(state), lambda: dict(state=state()), dict(state="any")),
    "BestParameters.restore": Case(lambda model: _kept().restore(model), lambda: dict(model=LotkaVolterra()), dict(model="model")),
    "EarlyStopping": Case(fn(pf.EarlyStopping), lambda: dict(patience=3, min_delta=0.0, restore_best=True),
                          dict(patience="count", min_delta="pos", restore_best="flag"), is_a(Callback)),
    "TensorBoardLogger": Case(fn(pf.TensorBoardLogger), lambda: dict(log_dir=tmpfile("tb"), figures_every=None),
                              dict(log_dir="path", figures_every="count"), is_a(Callback)),
    "MLflowLogger": Case(fn(pf.MLflowLogger), lambda: dict(experiment="e", run_name="r", tracking_uri=None, log_every=1),
                         dict(experiment="any", run_name="any", tracking_uri="any", log_every="count"), is_a(Callback)),
    **{f"{c}.{h}": Case(None, None, {}, exempt=HOOK) for c in ("Callback", "PrintLoss", "PlotSnapshots", "ProgressBar", "BestParameters",
                                                               "EarlyStopping", "TensorBoardLogger", "MLflowLogger")
       for h in ("on_fit_start", "on_epoch_end", "on_fit_end") if h in vars(getattr(pf, c))},
    # ---- checkpoints
    "save_checkpoint": Case(fn(pf.save_checkpoint), lambda: dict(path=tmpfile("c.pt"), state={"a": torch.ones(2)}),
                            dict(path="path", state="params")),
    "load_checkpoint": Case(fn(pf.load_checkpoint), lambda: dict(path=_checkpoint()), dict(path="path"), is_a(dict)),
    "train": Case(fn(pf.train, "model", "data"),
                  lambda: dict(model=LotkaVolterra(), data=_data(), lr=0.01, epochs=1, batch_size=2, method="rk4", step_size=0.25,
                               show_every=None, seed=0, max_steps=2000),
                  dict(model="model", data="data", lr="pos", epochs="count", batch_size="count", method="method", step_size="pos",
                       show_every="count", save_plots_every="count", model_name="any", seed="count0", plot_dir="path",
                       callbacks="callbacks", checkpoint="path", checkpoint_every="count", resume="flag", max_steps="count",
                       max_time="pos", rtol="pos", atol="pos"),
                  trained, errors=(DivergenceError,)),
    # ---- fitting
    "FitResult": Case(None, None, {}, exempt=RECORD),
    "FitResult.fit_report": Case(method(_fit, "fit_report"), dict, {}, is_a(str)),
    "FitResult.to_dict": Case(method(_fit, "to_dict"), dict, {}, is_a(dict)),
    "FitResult.to_dataframe": Case(method(_fit, "to_dataframe"), dict, {}, sized(4)),
    "FitResult.to_json": Case(method(_fit, "to_json"), lambda: dict(path=tmpfile("f.json")), dict(path="path"), is_a(str)),
    "fit": Case(fn(pf.fit, "model", "data"), lambda: dict(model=start(), data=_data(), **SOLVER, **FAST_FIT),
                dict(model="model", data="data", optimizer="choice", method="method", rtol="pos", atol="pos", step_size="pos",
                     dtype="dtype",
                     max_iter="count", xtol="pos", ftol="pos", starts="starts", lr="pos", adam_steps="count", compile="flag",
                     verbose="flag", callbacks="callbacks", max_steps="count", max_time="pos", horizons="pair", progress="flag", t0="real",
                     y0="state"),
                fitted, errors=(DivergenceError,)),
    # ---- estimation
    "Param": Case(fn(Param), lambda: dict(value=1.0, lower=0.0, upper=5.0, positive=False, fixed=False),
                  dict(value="real", lower="real", upper="real", positive="flag", fixed="flag"), is_a(Param)),
    "Param.check": Case(lambda **kw: Param(lower=0.0).check(**kw), lambda: dict(name="a", value=1.0, caller="estimate"),
                        dict(name="any", value="real", caller="any"), lambda r, a: finite(r)),
    "Profile": Case(None, None, {}, exempt=RECORD),
    "Profile.plot": Case(method(_profile, "plot"), lambda: dict(ax=None), dict(ax="ax"), plotted),
    "Estimate": Case(None, None, {}, exempt=RECORD),
    "Estimate.fit_report": Case(method(_estimate, "fit_report"), lambda: dict(correl_min=0.1), dict(correl_min="real"), is_a(str)),
    "Estimate.report": Case(method(_estimate, "report"), lambda: dict(correl_min=0.1), dict(correl_min="real"), is_a(str)),
    "Estimate.to_dict": Case(method(_estimate, "to_dict"), dict, {}, is_a(dict)),
    "Estimate.to_dataframe": Case(method(_estimate, "to_dataframe"), dict, {}, sized(4 + 2*2)),  # 4 parameters, 2 x 2 initial states
    "Estimate.to_json": Case(method(_estimate, "to_json"), lambda: dict(path=tmpfile("e.json")), dict(path="path"), is_a(str)),
    "Estimate.predict": Case(method(_estimate, "predict"), lambda: dict(traj=0, ts=None, level=0.95, n=5),
                             dict(traj="index", ts="ts", level="pos", n="count"), lambda r, a: len(r) == 4 and all(map(finite, r)),
                             errors=(SolverError,)),
    "Estimate.residuals": Case(method(_estimate, "residuals"), lambda: dict(traj=1, log=None), dict(traj="index", log="flag"),
                               lambda r, a: len(r) == 2 and all(map(finite, r))),
    "Estimate.profile": Case(method(_estimate, "profile"), lambda: dict(name="alpha", n=3, span=1.0, progress=False),
                             dict(name="choice", n="count", span="pos", progress="flag"), is_a(Profile)),
    "Estimate.plot_fit": Case(method(_estimate, "plot_fit"), lambda: dict(traj=0, ax=None, band=True, logy=False),
                              dict(traj="index", ax="ax", band="flag", logy="flag"), plotted),
    "Estimate.plot_residuals": Case(method(_estimate, "plot_residuals"), lambda: dict(ax=None), dict(ax="ax"), plotted),
    "Estimate.plot_traces": Case(method(_estimate, "plot_traces"), lambda: dict(ax=None), dict(ax="ax"), plotted),
    "estimate": Case(fn(pf.estimate, "model", "obs"), lambda: dict(model=start(), obs=obs(), **SOLVER, **FAST_FIT),
                     dict(model="model", obs="data", params="params", initial_conditions="state", y0="state", ic_positive="flag",
                          observe="index", loss="choice", weights="weights", shooting="count", continuity="pos", horizons="pair",
                          starts="starts", seed="count0", method="method", rtol="pos", atol="pos", step_size="pos", max_iter="count",
                          xtol="pos", ftol="pos", verbose="flag", progress="flag", max_steps="count", max_time="pos", t0="real"),
                     estimated, errors=(DivergenceError,)),
    # ---- discovery
    "PolynomialODE": Case(fn(PolynomialODE, "dim", "degree"), lambda: dict(dim=2, degree=2, coefficients=None, mask=None, names=None),
                          dict(dim="count", degree="count", coefficients="table", mask="table", names="names", include_bias="flag"),
                          is_a(nn.Module)),
    "PolynomialODE.features": Case(method(_poly, "features"), lambda: dict(y=Y0), dict(y="state"),
                                   lambda r, a: r.shape == (*a["y"].shape[:-1], 6)),  # huge states give huge (or inf) features
    "PolynomialODE.equations": Case(method(_poly, "equations"), lambda: dict(precision=3), dict(precision="count0"), is_a(list)),
    "PolynomialODE.terms": Case(method(_poly, "terms"), dict, {}, is_a(dict)),
    "PolynomialODE.forward": Case(None, None, {}, exempt=FORWARD),
    "sindy": Case(fn(pf.sindy, "states", "derivatives", "ts"),
                  lambda: dict(states=_lv_states(), derivatives=None, ts=torch.linspace(0, 1, 21),
                                                                          degree=2, threshold=0.1, alpha=0.05),
                  dict(states="table", derivatives="table", ts="ts", degree="count", threshold="pos", alpha="pos", names="names",
                       include_bias="flag", normalize="flag"), is_a(PolynomialODE)),
    "plot_terms": Case(fn(pf.plot_terms, "t", "learned", "true"), lambda: dict(t=TS, learned=_data().values[0], true=None, names=None,
                                                                               ax=None, title=None),
                       dict(t="vector", learned="table", true="table", names="names", ax="ax", title="any"), plotted),
    # ---- many datasets
    "ManyFits": Case(None, None, {}, exempt=RECORD),
    "ManyFits.__getitem__": Case(lambda index: _many()[index], lambda: dict(index=0), dict(index="index"), is_a(dict),
                                 errors=(IndexError,)),
    "ManyFits.to_dict": Case(method(_many, "to_dict"), dict, {}, is_a(dict)),
    "ManyFits.to_dataframe": Case(method(_many, "to_dataframe"), dict, {}, sized(2)),
    "ManyFits.to_json": Case(method(_many, "to_json"), lambda: dict(path=tmpfile("m.json")), dict(path="path"), is_a(str)),
    "ManyFits.to_csv": Case(method(_many, "to_csv"), lambda: dict(path=tmpfile("m.csv")), dict(path="path")),
    "fit_many": Case(fn(pf.fit_many, "model", "datasets"),
                     lambda: dict(model=start(), datasets=[_data(), _data()], progress=False, **FAST_FIT),
                     dict(model="model", datasets="data", starts="starts", params="params", weights="weights", method="method",
                          rtol="pos", atol="pos", step_size="pos", dtype="dtype", max_iter="count", xtol="pos", ftol="pos",
                          max_steps="count", max_time="pos", horizons="pair", level="pos", chunk_size="count", backend="choice",
                          max_retries="count0", progress="flag", dataset_col="any", t0="real", y0="state"), many),
    "estimate_many": Case(fn(pf.estimate_many, "model", "observations"),
                          lambda: dict(model=start(), observations=[obs(), obs()], progress=False, **SOLVER, **FAST_FIT),
                          dict(model="model", observations="data", starts="starts", chunk_size="count", backend="choice",
                               max_retries="count0", progress="flag", dataset_col="any", params="params"), many,
                          errors=(SolverError, DivergenceError, ModelError)),  # as estimate: no solution, or the model fails
}

def _kept() -> BestParameters:
    b = BestParameters(); b.keep(state()); return b

@cache
def _checkpoint() -> str: return str(pf.save_checkpoint(tmpfile("ok.pt"), {"a": torch.ones(2)}))

@cache
def _csv() -> str:
    p = tmpfile("o.csv"); obs().to_csv(p); return p

@cache
def _lv_states() -> torch.Tensor:
    return pf.simulate(LotkaVolterra(), torch.tensor([[1.0, 1.0]]), torch.linspace(0, 1, 21))[0].detach()

# ---------------------------------------------------------------- the registry covers the public API
def public_callables() -> set:
    "Every public callable: the names in `__all__` that can be called, and the public methods their classes define themselves."
    out = set()
    for name in pf.__all__:
        obj = getattr(pf, name)
        if not callable(obj): continue
        out.add(name)
        if inspect.isclass(obj):
            for k, v in vars(obj).items():
                if k == "extra_repr": continue  # nn.Module's hook for the repr: no arguments
                if (not k.startswith("_") or k == "__getitem__") and (inspect.isfunction(v) or isinstance(v, classmethod)):
                    out.add(f"{name}.{k}")
    return out

def test_the_registry_covers_every_public_callable():
    missing = sorted(public_callables() - set(REGISTRY))
    assert not missing, f"public callables without a property-test entry: {missing}; add one to REGISTRY"
    stale = sorted(set(REGISTRY) - public_callables())
    assert not stale, f"REGISTRY entries that are no public callable: {stale}"

def test_every_entry_names_real_arguments():
    "A kind for an argument the callable does not take would test nothing."
    for name, case in REGISTRY.items():
        if case.exempt: continue
        takes = _signature(name)
        if "**" not in takes: assert set(case.kinds) <= set(case.args()) | set(takes), (name, set(case.kinds) - set(takes))
        for kind in case.kinds.values(): assert kind in KINDS, (name, kind)

def _signature(name: str) -> list:
    obj = pf
    for part in name.split("."): obj = getattr(obj, part)
    try: ps = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError): return []
    return ["**" if p.kind == p.VAR_KEYWORD else p.name for p in ps]

def test_valid_calls_succeed():
    "Each registry entry's own call works: the properties below change one argument of a call that is right."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, case in REGISTRY.items():
            if case.exempt: continue
            r = case.call(**case.args())
            assert case.check is None or case.check(r, case.args()), (name, r)

# ---------------------------------------------------------------- the property
def _arguments() -> list:
    out = []
    for name, case in sorted(REGISTRY.items()):
        for arg in case.kinds:
            out.append(pytest.param(name, arg, id=f"{name}-{arg}"))
    return out

def assert_refused_well(e: BaseException, name: str, arg: str, case: Case, bad=None):
    """What a refusal may be: a ValueError or TypeError that names the argument, or one of the errors this call documents. A file that
    exists but holds the wrong thing is named by its path ('abc', line 3: ...)."""
    if isinstance(e, case.errors): return
    if isinstance(e, OSError) and case.kinds[arg] == "path": return  # the file system's own answer: a missing folder, a folder as a file
    if isinstance(e, RAW) or (isinstance(e, RuntimeError) and not isinstance(e, (SolverError, ModelError))):
        raise AssertionError(f"{name}({arg}=...) raised a raw {type(e).__name__}: {e}") from e
    if isinstance(e, ModelError) and case.kinds[arg] == "model": return  # a model whose own code fails: named, with its error
    if not isinstance(e, (ValueError, TypeError)):
        raise AssertionError(f"{name}({arg}=...) raised {type(e).__name__}, not a ValueError or TypeError: {e}") from e
    named_file = case.kinds[arg] == "path" and isinstance(bad, (str, os.PathLike)) and f"'{os.fspath(bad)}'" in str(e)
    assert names(str(e), case.says.get(arg, arg)) or named_file or \
        (case.kinds[arg] in ("model", "data") and _names_model_or_data(str(e))), \
        f"{name}({arg}=...): the message does not name {arg!r}: {e}"

def names(msg: str, word: str) -> bool:
    "Whether the message names `word` as a word of its own (an `i` inside 'is not in list' does not count)."
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", msg) is not None

def _names_model_or_data(msg: str) -> bool:
    "A model or dataset that is wrong inside is named by what is wrong with it: its class, its states, its parameters."
    return any(names(msg, w) for w in ("model", "data", "states", "parameters", "obs", "func", "known", "term"))

@pytest.mark.parametrize("name,arg", _arguments())
@PROPERTY
@given(draw=st.data())
def test_one_wrong_argument_is_refused_by_name_or_works(name, arg, draw):
    case = REGISTRY[name]
    args = case.args()
    bad = draw.draw(KINDS[case.kinds[arg]](), label=arg)
    args[arg] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try: r = case.call(**args)
        except Exception as e:
            assert_refused_well(e, name, arg, case, bad)
            return
    assert case.check is None or case.check(r, args), f"{name}({arg}={bad!r}) returned {r!r}"


# ---------------------------------------------------------------- every solver method, with built-in and user-written models
class Custom(nn.Module):
    "A user's own module: Lotka-Volterra with two of its rates, declaring its dimension but no population traits."
    dim = 2
    def __init__(self): super().__init__(); self.a, self.d = nn.Parameter(torch.tensor(1.4)), nn.Parameter(torch.tensor(2.8))
    def forward(self, t, y):
        x, p = y.unbind(-1)
        return torch.stack([x*(self.a - p), p*(x - self.d)], -1)

def _lv_function(t, y, a, d):
    x, p = y.unbind(-1)
    return torch.stack([x*(a - p), p*(x - d)], -1)

MODELS = dict(builtin=start, function=lambda: FunctionODE(_lv_function, dim=2, a=1.4, d=2.8), custom=Custom)
METHODS = FIXED_STEP_METHODS + ADAPTIVE_METHODS

def _solver(method: str) -> dict:
    "Loose tolerances for the adaptive methods (the low-order ones are slow at tight ones), a step for the fixed ones."
    return dict(step_size=0.125) if method in FIXED_STEP_METHODS else dict(rtol=1e-5, atol=1e-7)

def _finite_many(r) -> bool: return many(r, None) and all(s != "error" for s in r.status) and finite(r.loss)

ENTRIES = {  # entry -> (call(model, method, solver options), check of the result)
    "simulate": (lambda m, meth, kw: pf.simulate(m, Y0, TS, method=meth, **kw), shaped((2, 5, 2))),
    "create_sim_dataset": (lambda m, meth, kw: pf.create_sim_dataset(m, TS, num_samples=2, initial_conditions_default=torch.ones(2),
                                                                     method=meth, seed=0), is_a(SimODEData)),
    "ODEBlock": (lambda m, meth, kw: ODEBlock(m, TS, method=meth, **kw)(Y0), shaped((2, 5, 2))),
    "train": (lambda m, meth, kw: pf.train(m, data(), epochs=1, batch_size=2, show_every=None, method=meth, seed=0, **kw), trained),
    "fit": (lambda m, meth, kw: pf.fit(m, data(), method=meth, max_iter=3, horizons=None, **kw), fitted),
    "estimate": (lambda m, meth, kw: pf.estimate(m, obs(), method=meth, max_iter=3, horizons=None, **kw), estimated),
    "fit_many": (lambda m, meth, kw: pf.fit_many(m, [data(), data()], method=meth, max_iter=3, horizons=None, progress=False, **kw),
                 lambda r, a: _finite_many(r)),
    "estimate_many": (lambda m, meth, kw: pf.estimate_many(m, [obs(), obs()], method=meth, max_iter=3, horizons=None, progress=False, **kw),
                      lambda r, a: _finite_many(r)),
}
# what a call with a method documents instead of a result: train needs gradients through the solver, which scipy's does not give
REFUSED = {("train", "scipy_solver"): "train cannot use method='scipy_solver'"}

def _method_cases() -> list:
    out = []
    for entry in ENTRIES:
        for meth in METHODS:
            for model in MODELS:
                out.append(pytest.param(entry, meth, model, id=f"{entry}-{meth}-{model}"))
    return out

@pytest.mark.parametrize("entry,meth,model", _method_cases())
def test_every_solver_method_with_every_kind_of_model(entry, meth, model):
    call, check = ENTRIES[entry]
    kw = _solver(meth) if entry not in ("create_sim_dataset",) else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if (entry, meth) in REFUSED:
            with pytest.raises(ValueError, match=REFUSED[entry, meth]): call(MODELS[model](), meth, kw)
            return
        r = call(MODELS[model](), meth, kw)
    assert check(r, None), (entry, meth, model, r)


# ---------------------------------------------------------------- user-written models that are wrong, at every entry point
MODEL_ENTRIES = {
    "simulate": lambda m: pf.simulate(m, Y0, TS),
    "create_sim_dataset": lambda m: pf.create_sim_dataset(m, TS, num_samples=2, initial_conditions_default=torch.ones(2), seed=0),
    "train": lambda m: pf.train(m, data(), epochs=1, show_every=None, method="rk4", step_size=0.25),
    "fit": lambda m: pf.fit(m, data(), max_iter=3, horizons=None),
    "estimate": lambda m: pf.estimate(m, obs(), max_iter=3, horizons=None),
    "ODEBlock": lambda m: ODEBlock(m, TS)(Y0),
    "HybridODE.known": lambda m: HybridODE(m, dim=2),
    "HybridODE.term": lambda m: HybridODE(LotkaVolterra(), term=m),
    "plot_time_series": lambda m: pf.plot_time_series(None, m, data(), time_range=(0.0, 1.0)),
    "fit_many": lambda m: pf.fit_many(m, [data(), data()], max_iter=3, horizons=None, progress=False),
}
ARG = {"ODEBlock": "func", "HybridODE.known": "known", "HybridODE.term": "term", "plot_time_series": "fit_model"}
# the documented outcomes of a model that returns NaN or inf: no solution (a SolverError, or a fit's DivergenceError), or data refused
DIVERGES = (SolverError, DivergenceError)

def _model_cases() -> list:
    out = []
    for entry in MODEL_ENTRIES:
        for i, m in enumerate(_bad_models()):
            out.append(pytest.param(entry, i, id=f"{entry}-{i}-{type(m).__name__}"))
    return out

@pytest.mark.parametrize("entry,i", _model_cases())
def test_a_wrong_model_is_refused_by_name_at_every_entry_point(entry, i):
    m = _bad_models()[i]
    name = ARG.get(entry, "model")
    case = Case(None, None, {name: "model"}, errors=DIVERGES + (ModelError,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try: r = MODEL_ENTRIES[entry](m)
        except Exception as e:
            assert_refused_well(e, entry, name, case)
            return
    # a model that runs gives a finite answer; a layer returns what rk4 computes, NaN included, without a host sync (train and fit
    # then report the divergence)
    if isinstance(r, torch.Tensor) and entry != "ODEBlock": assert finite(r), (entry, m, r)

@pytest.mark.parametrize("entry", ["simulate", "create_sim_dataset", "train", "fit", "estimate", "ODEBlock", "plot_time_series"])
def test_a_model_of_the_wrong_shape_gets_one_wording_everywhere(entry):
    "Silently broadcast before (fit, estimate, train), a raw reshape error in simulate: now one check, one message."
    with pytest.raises(ValueError, match=rf"^{entry.split('.')[0]} needs {ARG.get(entry, 'model')}\(t, y\) to return dy/dt with the shape "
                                         rf"of y, \(\d+, 2\) \((batch|trajectory), state\), but .* returned shape \(\d+, 1\); the vector "
                                         rf"field gives one derivative per state\.$"):
        MODEL_ENTRIES[entry](FunctionODE(lambda t, y, k: -k*y[..., :1], dim=2, k=1.0))


# ---------------------------------------------------------------- the defects of issue 19, part 4, each with its test
def test_fit_refuses_a_zero_or_infinite_lr():
    for lr in (0, math.inf, -1.0, math.nan):
        with pytest.raises(ValueError, match="fit needs lr as a positive finite number"): pf.fit(start(), data(), lr=lr)

def test_fit_refuses_empty_starts():
    with pytest.raises(ValueError, match=r"fit needs starts as a tensor \(K, 4\) of K >= 1 parameter vectors, got \(0, 4\)"):
        pf.fit(start(), data(), starts=torch.zeros(0, 4))

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.complex64])
def test_fit_refuses_a_dtype_it_cannot_fit_in(dtype):
    with pytest.raises(ValueError, match=f"fit needs dtype as torch.float64 or torch.float32 .*got {dtype}"):
        pf.fit(start(), data(), dtype=dtype)
    with pytest.raises(TypeError, match="fit needs dtype as torch.float64 or torch.float32"): pf.fit(start(), data(), dtype="float64")

def test_fit_refuses_a_half_precision_model_with_dtype_none():
    with pytest.raises(ValueError, match="fit with dtype=None computes in the model's own torch.float16"):
        pf.fit(start().half(), data(), dtype=None)

def test_train_refuses_an_lr_its_parameters_cannot_hold():
    with pytest.raises(ValueError, match=r"train needs lr as a positive number that the model's torch.float32 parameters can hold"):
        pf.train(LotkaVolterra(), data(), lr=1e300, epochs=1, show_every=None)

def test_param_fields_are_numbers_and_flags():
    with pytest.raises(TypeError, match="Param needs value as a finite real number or None, got str 'abc'"): Param(value="abc")
    with pytest.raises(TypeError, match=r"Param needs lower as a real number \(inf allowed, not NaN\), got str 'x'"): Param(lower="x")
    with pytest.raises(ValueError, match="Param needs upper as a real number"): Param(upper=math.nan)
    with pytest.raises(TypeError, match="Param needs positive as True or False"): Param(positive="yes")
    assert Param(lower=-math.inf, upper=math.inf, value=np.float64(2.0)).value == 2.0

def test_estimate_refuses_empty_starts():
    with pytest.raises(ValueError, match=r"estimate needs starts as a number or a tensor \(K, 4\) of K >= 1 starting values"):
        pf.estimate(start(), obs(), starts=torch.zeros(0, 4))

def test_estimate_refuses_nan_initial_conditions_and_infinite_continuity():
    "Reported as a divergence before: now refused by name."
    with pytest.raises(ValueError, match="estimate found NaN or inf in initial_conditions"):
        pf.estimate(start(), obs(), initial_conditions=torch.full((2, 2), math.nan))
    with pytest.raises(ValueError, match="estimate found NaN or inf in y0"): pf.estimate(start(), obs(), y0=torch.tensor([math.nan, 1.0]))
    with pytest.raises(ValueError, match=r"estimate needs a positive continuity weight \(a finite number\), got inf"):
        pf.estimate(start(), obs(), shooting=2, continuity=math.inf)

def test_estimate_refuses_params_and_weights_of_the_wrong_container():
    with pytest.raises(TypeError, match="estimate needs params as a dict of parameter name -> Param, number or None, got list"):
        pf.estimate(start(), obs(), params=[("alpha", 1.0)])
    with pytest.raises(TypeError, match="estimate needs weights as 'equal', 'learn' or one positive number per column"):
        pf.estimate(start(), obs(), weights={"y0": 1.0})
    with pytest.raises(ValueError, match=r"estimate needs params\['alpha'\] as a finite real number, got nan"):
        pf.estimate(start(), obs(), params={"alpha": math.nan})

def test_a_column_without_observations_has_no_noise_scale():
    t = torch.linspace(0, 2, 9, dtype=torch.float64)
    y = torch.stack([2*torch.exp(-0.5*t), torch.full_like(t, math.nan)], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = pf.estimate(FunctionODE(lambda t, y, k: -k*y, dim=2, k=0.4), Observations([t], [y], columns=["a", "b"]),
                          y0=torch.tensor([2.0, 1.0]))
        learned = pf.estimate(FunctionODE(lambda t, y, k: -k*y, dim=2, k=0.4), Observations([t], [y], columns=["a", "b"]),
                              y0=torch.tensor([2.0, 1.0]), weights="learn")
    assert math.isnan(est.sigma["b"]) and est.sigma["a"] >= 0 and math.isnan(learned.sigma["b"])

def test_fit_of_a_model_whose_parameter_has_no_effect():
    "lm_step raised torch's LinAlgError: now the parameter does not move, and its standard error is infinite, as estimate says."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = pf.fit(FunctionODE(lambda t, y, k, unused: -k*y, dim=2, k=0.5, unused=1.0), data(), max_iter=20)
        none = pf.fit(FunctionODE(lambda t, y, k: 0*k*y, dim=2, k=1.0), data(), max_iter=5)  # no parameter has any effect
    assert r.params["unused"] == 1.0 and (r.stderr is None or r.stderr["unused"] == math.inf)
    assert none.params["k"] == 1.0 and math.isfinite(none.loss)

def test_simulate_fit_estimate_train_refuse_a_model_of_the_wrong_shape():
    narrow = lambda: FunctionODE(lambda t, y, k: -k*y[..., :1], dim=2, k=1.0)
    for call in (lambda: pf.simulate(narrow(), Y0, TS), lambda: pf.fit(narrow(), data()), lambda: pf.estimate(narrow(), obs()),
                 lambda: pf.train(narrow(), data(), show_every=None)):
        with pytest.raises(ValueError, match=r"needs model\(t, y\) to return dy/dt with the shape of y"): call()


# ---------------------------------------------------------------- more that the properties found, each with its test
def test_scipy_solver_fits_by_central_differences():
    "The complex step cannot go through scipy's solver: fit and estimate take central differences there."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = pf.fit(start(), data(), method="scipy_solver", max_iter=3, horizons=None)
        e = pf.estimate(start(), obs(), method="scipy_solver", max_iter=3, horizons=None)
    assert r.jacobian == "central" and math.isfinite(r.loss) and math.isfinite(e.ssr)
    with pytest.raises(ValueError, match="fit: method='scipy_solver' returns no gradients"):
        pf.fit(start(), data(), method="scipy_solver", optimizer="lbfgs")

def test_a_step_that_swallows_the_span_or_would_build_a_huge_grid():
    with pytest.raises(ValueError, match="step_size=1e\\+300 is so much larger than the time span 1 that the grid has no step"):
        pf.fit(start(), data(), method="rk4", step_size=1e300)
    with pytest.raises(SolverError, match=r"rk4 would take 1e\+300 steps"):  # refused before the grid is built
        pf.simulate(LotkaVolterra(), Y0, TS, method="rk4", step_size=1e-300)
    with pytest.raises(DivergenceError, match=r"rk4 would take 1e\+300 steps"):
        pf.fit(start(), data(), method="rk4", step_size=1e-300)

def test_tolerances_are_checked_whatever_the_method():
    with pytest.raises(TypeError, match="fit needs rtol as a positive finite number or None"):
        pf.fit(start(), data(), method="rk4", rtol=[1e-6])
    with pytest.raises(ValueError, match="train needs atol as a positive finite number or None"):
        pf.train(LotkaVolterra(), data(), method="rk4", atol=math.nan, show_every=None)

def test_plot_functions_refuse_what_is_no_axes():
    for call in (lambda: fig_ax("ax"), lambda: pf.plot_history([1.0, 0.5], ax=object()), lambda: _estimate().plot_fit(ax=1),
                 lambda: _profile().plot(ax=plt_figure())):
        with pytest.raises(TypeError, match="needs ax as matplotlib axes"): call()

def plt_figure():
    import matplotlib.pyplot as plt
    return plt.figure()

def test_the_hook_runners_and_best_parameters_check_what_they_get():
    with pytest.raises(TypeError, match="run_hooks needs callbacks as the list check_callbacks returns"):
        run_hooks(None, "on_fit_end", state())
    with pytest.raises(ValueError, match="run_hooks needs hook as one of"): run_hooks([], "on_start", state())
    with pytest.raises(TypeError, match="end_hooks needs state as the run's TrainState"): end_hooks([], None, "completed")
    with pytest.raises(TypeError, match="BestParameters.keep needs state as a TrainState"): BestParameters().keep(None)
    with pytest.raises(ValueError, match="BestParameters.restore needs model of the kind it watched"): _kept().restore(Wide())
    with pytest.raises(ValueError, match="PrintLoss needs every as a positive integer"): pf.PrintLoss(0)
    with pytest.raises(TypeError, match="got the class BestParameters; pass an instance"):
        pf.fit(start(), data(), callbacks=[BestParameters])

def test_estimate_methods_check_their_arguments():
    e = _estimate()
    with pytest.raises(ValueError, match=r"predict needs level in \(0, 1\)"): e.predict(level=1.5)
    with pytest.raises(ValueError, match="predict needs n as a positive integer"): e.predict(n=0)
    with pytest.raises(ValueError, match="predict needs ts as finite, strictly increasing times"): e.predict(ts=torch.tensor([math.inf]))
    with pytest.raises(TypeError, match="predict needs traj as a trajectory's position"): e.predict(traj=None)
    with pytest.raises(TypeError, match="residuals needs log as True or False or None"): e.residuals(log="yes")
    with pytest.raises(ValueError, match="'sigma' is not a fitted parameter"): e.profile("sigma")
    with pytest.raises(ValueError, match="profile needs span as a positive finite number"): e.profile("alpha", span=math.nan)
    with pytest.raises(TypeError, match="fit_report needs correl_min as a finite number >= 0"): e.fit_report(None)

def test_data_and_observations_name_their_arguments():
    with pytest.raises(TypeError, match="SimODEData needs an integer index"): data()["a"]
    with pytest.raises(IndexError, match="SimODEData index 5 is out of range for 2 trajectories"): data()[5]
    with pytest.raises(ValueError, match="create_sim_dataset needs sigma_initial_conditions small enough for float32"):
        pf.create_sim_dataset(LotkaVolterra(), TS, initial_conditions_default=torch.ones(2), sigma_initial_conditions=1e300)
    with pytest.raises(TypeError, match="Observations.subset picks trajectories by position \\(int\\) or id \\(str\\): ids got bool"):
        obs().subset([True])
    with pytest.raises(ValueError, match="Observations needs times and values with one entry per trajectory"): Observations([], [Y0])

def test_hybrid_and_ode_block_check_their_parts():
    wide = FunctionODE(lambda t, y: torch.cat([y, y], -1), dim=2)
    with pytest.raises(ValueError, match=r"HybridODE needs term\(t, y\) to return dy/dt with the shape of y, \(1, 2\)"):
        HybridODE(LotkaVolterra(), term=wide)
    with pytest.raises(ValueError, match=r"ODEBlock needs func\(t, y\) to return dy/dt"): ODEBlock(wide, TS)(Y0)
    with pytest.raises(TypeError, match="ODEBlock needs y0 as a floating point tensor"): ODEBlock(LotkaVolterra(), TS)(Y0.bool())

def test_plotting_arguments():
    with pytest.raises(TypeError, match="plot_history needs history as a History or a sequence of loss values"): pf.plot_history(None)
    with pytest.raises(TypeError, match="plot_profile needs interval as a finite real number"):
        pf.plot_profile([0.0, 1.0], [1.0, 0.0], "a", interval=("a", 1.0))
    with pytest.raises(ValueError, match=r"plot_time_series needs data of shape \(1, 2\)"):
        pf.plot_time_series(None, LotkaVolterra(), pf.create_sim_dataset(pf.Lorenz(), TS, initial_conditions_default=torch.ones(3), seed=0))
    with pytest.raises(TypeError, match="PolynomialODE needs mask as a boolean tensor"): PolynomialODE(2, mask=[["a"]*6]*2)
    fig, ax = pf.plot_terms(TS, torch.ones(5, 2, dtype=torch.bfloat16))
    assert len(ax.lines) == 2
