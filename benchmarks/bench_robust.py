"""Robustness of `fit` and `estimate` over families of random problems, side by side with scipy.

    python benchmarks/bench_robust.py                       # every family but the stiff and hard ones (15-20 minutes on 2 CPU cores)
    python benchmarks/bench_robust.py --quick               # a smoke run (under a minute)
    python benchmarks/bench_robust.py --families stiff      # the four stiff families (about 20 minutes)
    python benchmarks/bench_robust.py --families hard       # the six hard families (10-20 minutes on one core)
    python benchmarks/bench_robust.py --families robertson,vdp-stiff --method rodas5p   # the library with a named solver
    python benchmarks/bench_robust.py --families lv-post    # the post's Lotka-Volterra problem on 256 random datasets
    python benchmarks/bench_robust.py --families vdp,sir --n 4 --by start --json out.json

A family is a set of random datasets of one system: true parameters drawn uniformly within +-20% of a nominal value,
random initial states around a nominal state, noise at one of two levels (relative to each state's spread; datasets
alternate between them). Every dataset is fitted from two kinds of start: "30%" (each parameter times 1 +- 0.3, random
sign) and "2x" (each parameter times 2 or 0.5, random). The family `lv-post` is the blog post's problem instead: data
from `create_sim_dataset` exactly as in the post, one fixed start.

The stiff families (the group `stiff`, left out of `all` for their time):
  robertson   Robertson's reactions with his rate constants (0.04, 3e7, 1e4), the intermediate counted in units of 1e-4,
              on a log-spaced grid from 1e-5 to 1e5; the rate constants are fitted on a log scale (`fit` gets a model of
              their logarithms, `estimate` `Param(positive=True)`, scipy their logarithms);
  vdp-stiff   Van der Pol (the library's VDP) with mu drawn log-uniformly in [100, 1000], one trajectory over 1.5 mu (about
              one period: two relaxation jumps); `estimate` observes x;
  enzyme      E + S <-> C -> E + P by mass action, binding (kf = 1000) and unbinding (kr = 100) fast against kcat = 1, on a
              log-spaced grid from 1e-4 to 30;
  oregonator  Field and Noyes' Oregonator in Hairer and Wanner's scaling, one trajectory over its first burst and decay
              (t in [0, 30]; the burst comes within t < 1 from the initial states drawn, x reaches about 1e5).
Their datasets are smaller (fewer datasets or trajectories) to keep each family's run to minutes; --n gives more. The
library runs with the solver method of `--method`, by default that of `fit` and `estimate` ('auto': dopri5, which hands
stiff batch elements to an implicit Rosenbrock method); scipy runs twice on them, with Radau and with LSODA, each given the
family's analytic Jacobian (rows "scipy Radau" and "scipy LSODA").

The hard families (the group `hard`, left out of `all`; not stiff: scipy runs with LSODA as on `all`, but at rtol 1e-10 and atol 1e-12,
as MINPACK is run on such problems: at 1e-6 its finite-difference Jacobian through LSODA is noise on the forced oscillator, and scipy
fails every run there; the library keeps its defaults):
  exp-sum     two decaying exponentials (rates k1 = 1, k2 = 0.2, unknown amounts) seen only through their sum, on [0, 20]:
              the states are the sum s = y1 + y2 and y2 (s' = -k1 s + (k1 - k2) y2, y2' = -k2 y2), so that the sum is a state;
              `fit` sees both states (the usual fit variant, well posed), `estimate` only s, fitting the amounts (the initial
              states) with the rates: the ill-conditioned problem;
  exp-sum3    the same with three exponentials (k = 2, 0.5, 0.1; states s, y2, y3) on [0, 30], `estimate` observing s only;
  pulse       a Gaussian pulse y = y(0) exp((c^2 - (t - c)^2)/(2 w^2)) as the non-autonomous ODE y' = -(t - c)/w^2 y, centre
              c = 2 and width w = 0.65 on [0, 6], y(0) about exp(-c^2/(2 w^2)) = 9e-3: the state rises about two orders of
              magnitude to its peak and falls about eight below it by t = 6 (the peak's height and the range vary steeply
              with the truth drawn: log(peak/y(0)) = c^2/(2 w^2)); c and w are fitted on a log scale (as `log` families);
  growth      logistic growth y' = r y (1 - y/K) with r = 0.5 and K = 1e4 (five orders apart, fitted on their own scale) from y(0)
              about 100, on [0, 25]; besides the "30%" and "2x" starts it is fitted from a "100x" start (each parameter times
              100 or 1/100, random);
  forced      a damped oscillator driven by a cosine, x' = v, v' = -c v - k x + F cos(omega t) (omega = 1.3 known), with unknown
              damping c, stiffness k and amplitude F, on [0, 20]; non-autonomous; `estimate` observes x;
  late-obs    the chain A -> B -> C (rates k1 = 0.6, k2 = 0.2; states A and B) with a known initial state at t0 = 0 and
              observations only from t = 2 to 20. As `fit` and `estimate` have no initial time before their data's first row,
              the problem is posed on the grid [0, 2, 2.25, ..., 20]: `fit`'s data hold the known initial state in the first
              row (at t = 0; its residual is zero for every method), `estimate`'s first row is missing (NaN) and the initial
              states at t = 0 are fitted from the later rows; scipy fits the same rows, and the evaluator skips the missing ones.
Each runs fast, so the group has 40 datasets of each (32 of growth and forced): 10-15 minutes on one core.

Each problem is solved in two variants, each by the library and by scipy from the same start:
  fit       `fit(model, data)` with default options: every state observed, initial states known (the data's first row,
            which holds the noise-free initial state, as `create_sim_dataset` makes it);
  estimate  `estimate(model, obs, y0=...)`: initial states fitted too, and only some states observed where the system allows
            (VDP: x, FitzHugh-Nagumo: v, SIR: I); its data keep the noisy first row; the starting initial states are the
            truth off by 20% (random sign per state), observed or not (a noisy first observation can be unphysical, such
            as a negative number of infected);
  scipy     `least_squares(method="lm", x_scale="jac")` over one `solve_ivp(method="LSODA", rtol=1e-6, atol=1e-8)` of all
            trajectories (stiff families: Radau or LSODA with the analytic Jacobian), with the unknowns of the variant it
            stands beside. It is given at most 100 Jacobians' worth of residual evaluations (the library's max_iter=100); a
            solve that blows up or takes more than 50,000 right-hand-side evaluations returns a large residual.

Every method's final loss is recomputed by one evaluator (LSODA, rtol=1e-10, atol=1e-12, from the method's parameters and
initial states; with the analytic Jacobian on the stiff families): the mean squared residual over the observed values, so
that differences between solvers cannot bias the comparison. A run succeeds
  (10%)      when every parameter is within 10% of the truth,
  (lowest)   when its loss is within a relative 1e-3 of the lowest loss any method found on that problem and variant.
A run that misses the 10% criterion is counted under one failure kind: "exception: <type>"; the method's own verdict when
it reports a failure (the library's `status`, or "not converged: <message>" before `status` existed; "scipy: max_nfev",
"scipy: solver failed", ...); when it reports success, "wrong optimum" if its loss is above the lowest known on the problem
(found by any method, or the truth's own loss; same 1e-3 tolerance), else "best fit >10% off" (the data's best fit lies
more than 10% from the truth). Each run's memory is measured too (benchmarks/peak.py): the resident-memory peak while it ran
and its rise over the run's start; the table shows the worst of each over a group's runs. `--json` saves every run's record
(parameters, initial states, losses, status, time, peak_mb, rise_mb).
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import statistics
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares
from torch import nn

from paramfittorchdemo import LotkaVolterra, Lorenz, VDP, create_sim_dataset
from paramfittorchdemo.data import SimODEData
from paramfittorchdemo.estimation import Param, estimate
from paramfittorchdemo.observations import Observations
from paramfittorchdemo.fitting import fit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peak import NOTE, mb, peak_memory  # noqa: E402

TOL_10 = 0.10  # success: every parameter within this relative distance of the truth
TOL_LOWEST = 1e-3  # success: loss within this relative distance of the lowest loss found on the problem
SCIPY_RTOL, SCIPY_ATOL = 1e-6, 1e-8  # scipy's solver tolerances: the library's defaults
EVAL_RTOL, EVAL_ATOL = 1e-10, 1e-12  # the common evaluator's (and the data generator's) tolerances
MAX_RHS_EVALS = 50_000  # a scipy solve that needs more right-hand-side evaluations than this counts as failed
START_KINDS = ("30%", "2x")
START_FACTORS = {"30%": None, "2x": 2.0, "100x": 100.0}  # start kinds: 30% off, or each parameter times this factor or its inverse
LIBRARY_METHOD = inspect.signature(fit).parameters["method"].default  # the solver of fit and estimate unless --method says otherwise
STIFF_SCIPY = ("Radau", "LSODA")  # scipy's solvers on the stiff families
HARD_SCIPY_TOL = (1e-10, 1e-12)  # scipy's solver tolerances on the hard families


def _cos(x):
    "The cosine of a tensor (the library's path) or of a number or numpy array (scipy's)."
    return torch.cos(x) if isinstance(x, torch.Tensor) else np.cos(x)


class ODESystem(nn.Module):
    """A right-hand side rhs(states, params) -> derivatives (tuples of tensors) with one parameter vector, for parameter populations;
    with `uses_t`, rhs(states, params, t) of a non-autonomous system (the model then declares `autonomous = False`)."""
    autonomous = True

    def __init__(self, rhs: Callable, dim: int, param_names: tuple, values, log: bool = False, uses_t: bool = False):
        super().__init__()
        self.rhs, self.dim, self.log, self.uses_t = rhs, dim, log, uses_t
        if uses_t: self.autonomous = False
        self.param_names = tuple(f"log_{n}" for n in param_names) if log else tuple(param_names)  # log: the fit sees log(value)
        values = [math.log(float(v)) if log else float(v) for v in values]
        self.model_params = nn.Parameter(torch.tensor(values, dtype=torch.float64))

    def forward(self, t, y):
        "Derivatives (..., dim) of states (..., dim); parameters (..., P) broadcast against the states' leading axes."
        params = self.model_params.exp() if self.log else self.model_params
        args = (torch.as_tensor(t, dtype=y.real.dtype, device=y.device),) if self.uses_t else ()
        return torch.stack(torch.broadcast_tensors(*self.rhs(y.unbind(-1), params.unbind(-1), *args)), dim=-1)


@dataclass
class Family:
    "A family of random problems of one system."
    name: str
    rhs: Callable  # rhs(states, params[, t]) -> derivatives: tuples of numpy arrays (scipy) or tensors (the library); +-*/, powers, _cos
    names: tuple  # parameter names
    nominal: tuple  # nominal parameters; each dataset's truth is drawn uniformly within +-20% of them
    y0: tuple  # nominal initial state
    y0_spread: tuple  # initial states are drawn uniformly within y0 +- y0_spread, per trajectory (lv-post: normal, this sd)
    ts: np.ndarray  # time grid
    trajectories: int  # trajectories per dataset
    noise: tuple = (0.01, 0.05)  # noise levels, relative to each state's standard deviation over the dataset
    observe: Optional[list] = None  # states observed in the estimate variant (None: all)
    n: int = 8  # datasets by default
    library_model: Optional[Callable] = None  # params -> the library's own model class (built-in systems); None: ODESystem
    post_start: Optional[tuple] = None  # the post's problem: data from create_sim_dataset, fitted from this start only
    variants: tuple = ("fit", "estimate")
    truth_range: Optional[tuple] = None  # (low, high) per parameter: truths drawn log-uniformly between them instead (stiff VDP)
    ts_unit: Optional[int] = None  # the time grid is `ts` times this parameter's true value (stiff VDP: time in units of mu)
    log: bool = False  # fit the parameters on a log scale: fit a model of log(value), estimate Param(positive=True), scipy log(value)
    jac: Optional[Callable] = None  # jac(states, params) -> rows of d rhs_i/d state_j: scipy's implicit solvers and the evaluator use it
    scipy_methods: tuple = ("LSODA",)  # solve_ivp methods under scipy's least_squares: one scipy row each
    scipy_tol: Optional[tuple] = None  # (rtol, atol) of scipy's solves (None: SCIPY_RTOL, SCIPY_ATOL)
    uses_t: bool = False  # a non-autonomous system: rhs(states, params, t), and the torch model declares autonomous = False
    group: Optional[str] = None  # a group left out of 'all' and selected by its name ('hard'); the stiff ones: by their `jac`
    extra_starts: tuple = ()  # start kinds besides "30%" and "2x" (keys of START_FACTORS: "100x")
    first_unobserved: bool = False  # the first time point holds the known initial state only: estimate's data mark it missing (NaN)

    @property
    def dim(self) -> int: return len(self.y0)

    @property
    def stiff(self) -> bool: return self.jac is not None

    @property
    def start_kinds(self) -> tuple: return ("post",) if self.post_start is not None else START_KINDS + tuple(self.extra_starts)

    def derivatives(self, states, params, t):
        "The right-hand side at time t (passed only to a non-autonomous system's rhs)."
        return self.rhs(states, params, t) if self.uses_t else self.rhs(states, params)

    def model(self, params, log: bool = False) -> nn.Module:
        "The torch model with parameters `params` (with `log`: an ODESystem whose parameters are their logarithms)."
        if self.library_model is not None and not log: return self.library_model(*[float(p) for p in params])
        return ODESystem(self.rhs, self.dim, self.names, params, log=log, uses_t=self.uses_t)

    def grid(self, truth) -> np.ndarray:
        "The time grid of a dataset with true parameters `truth`."
        return self.ts if self.ts_unit is None else self.ts*float(truth[self.ts_unit])

    def scipy_label(self, method: str) -> str:
        "The name of scipy's row with solve_ivp `method`: 'scipy' when the family has one, else 'scipy <method>'."
        return "scipy" if len(self.scipy_methods) == 1 else f"scipy {method}"


def _vdp(s, p):
    "Van der Pol's oscillator in the library's (Lienard) form."
    x, y = s
    mu, = p
    return mu*(x - x*x*x/3 - y), x/mu


def _lotka_volterra(s, p):
    "Prey x and predators y."
    x, y = s
    alpha, beta, delta, gamma = p
    return alpha*x - beta*x*y, -delta*y + gamma*x*y


def _lorenz(s, p):
    "Lorenz's convection model."
    x, y, z = s
    sigma, rho, beta = p
    return sigma*(y - x), x*(rho - z) - y, x*y - beta*z


def _fitzhugh_nagumo(s, p):
    "A neuron's membrane voltage v and recovery variable w."
    v, w = s
    a, b, c = p
    return c*(v - v*v*v/3 + w), -(v - a + b*w)/c


def _sir(s, p):
    "Susceptible and infected fractions; the recovered are 1 - S - I and affect neither."
    S, I = s
    beta, gamma = p
    return -beta*S*I, beta*S*I - gamma*I


def _brusselator(s, p):
    "An autocatalytic oscillating reaction (a limit cycle for b > 1 + a^2)."
    x, y = s
    a, b = p
    return a + x*x*y - (b + 1)*x, b*x - x*x*y


def _michaelis_menten(s, p):
    "Substrate consumed by an enzyme at the rate vmax*S/(km + S)."
    S, = s
    vmax, km = p
    return -vmax*S/(km + S),


def _robertson(s, p):
    "Robertson's reactions A -> B, 2B -> B + C, B + C -> A + C, with milder rates: the fast time scale is about 1/60 of the slow one."
    a, b, c = s
    k1, k2, k3 = p
    return -k1*a + k3*b*c, k1*a - k3*b*c - k2*b*b, k2*b*b


def _vdp_jac(s, p):
    "The Jacobian of `_vdp`."
    x, y = s
    mu, = p
    return (mu*(1 - x*x), -mu), (1/mu, 0.0)


def _robertson_stiff(s, p):
    """Robertson's reactions A -> B, 2B -> B + C, B + C -> A + C with his rates (0.04, 3e7, 1e4); B is counted in units of 1e-4 so
    that every state is of order one (its largest value is about 0.37)."""
    a, b, c = s
    k1, k2, k3 = p
    return -k1*a + 1e-4*k3*b*c, 1e4*k1*a - k3*b*c - 1e-4*k2*b*b, 1e-8*k2*b*b


def _robertson_stiff_jac(s, p):
    "The Jacobian of `_robertson_stiff`."
    a, b, c = s
    k1, k2, k3 = p
    return (-k1, 1e-4*k3*c, 1e-4*k3*b), (1e4*k1, -k3*c - 2e-4*k2*b, -k3*b), (0.0, 2e-8*k2*b, 0.0)


def _enzyme(s, p):
    "Mass action of E + S <-> C -> E + P: substrate, free enzyme, complex, product; binding (kf) and unbinding (kr) are fast."
    S, E, C, P = s
    kf, kr, kcat = p
    bind = kf*E*S
    return -bind + kr*C, -bind + (kr + kcat)*C, bind - (kr + kcat)*C, kcat*C


def _enzyme_jac(s, p):
    "The Jacobian of `_enzyme`."
    S, E, C, P = s
    kf, kr, kcat = p
    return ((-kf*E, -kf*S, kr, 0.0), (-kf*E, -kf*S, kr + kcat, 0.0), (kf*E, kf*S, -(kr + kcat), 0.0), (0.0, 0.0, kcat, 0.0))


def _oregonator(s, p):
    "Field and Noyes' Oregonator in Hairer and Wanner's scaling: the Belousov-Zhabotinsky reaction's HBrO2, Br- and Ce(IV)."
    x, y, z = s
    s_, w, q = p
    return s_*(y - x*y + x - q*x*x), (-y - x*y + z)/s_, w*(x - z)


def _oregonator_jac(s, p):
    "The Jacobian of `_oregonator`."
    x, y, z = s
    s_, w, q = p
    return (s_*(1 - y - 2*q*x), s_*(1 - x), 0.0), (-y/s_, -(1 + x)/s_, 1/s_), (w, 0.0, -w)


def _exp_sum(s, p):
    "Two decaying exponentials y1, y2 through their sum: states s = y1 + y2 and y2."
    S, y2 = s
    k1, k2 = p
    return -k1*S + (k1 - k2)*y2, -k2*y2


def _exp_sum3(s, p):
    "Three decaying exponentials y1, y2, y3 through their sum: states s = y1 + y2 + y3, y2 and y3."
    S, y2, y3 = s
    k1, k2, k3 = p
    return -k1*S + (k1 - k2)*y2 + (k1 - k3)*y3, -k2*y2, -k3*y3


def _pulse(s, p, t):
    "A Gaussian pulse of centre c and width w: y = y(0) exp((c^2 - (t - c)^2)/(2 w^2)); non-autonomous."
    y, = s
    c, w = p
    return -(t - c)/(w*w)*y,


PULSE_Y0 = math.exp(-2.0**2/(2*0.65**2))  # the pulse's nominal initial state: exp(-c^2/(2 w^2)) at the nominal c = 2, w = 0.65


def _logistic(s, p):
    "Logistic growth at rate r towards the capacity K."
    y, = s
    r, K = p
    return r*y*(1 - y/K),


FORCED_OMEGA = 1.3  # the known angular frequency of the forced oscillator's drive


def _forced(s, p, t):
    "A damped oscillator (damping c, stiffness k) driven by F cos(omega t); non-autonomous."
    x, v = s
    c, k, F = p
    return v, -c*v - k*x + F*_cos(FORCED_OMEGA*t)


def _chain(s, p):
    "The chain A -> B -> C (first order); C = A(0) + B(0) + C(0) - A - B affects neither."
    A, B = s
    k1, k2 = p
    return -k1*A, k1*A - k2*B


def make_families() -> dict:
    "Every family of the suite, by name."
    lv_ts = torch.arange(0, 10, 0.1)  # the post's grid, in float32 as the post builds it
    fams = [
        Family("lv-post", _lotka_volterra, LotkaVolterra.param_names, (1.5, 1.0, 3.0, 1.0), (2.5, 2.5), (0.1, 0.1),
               lv_ts.double().numpy(), 10, noise=(0.1,), n=256, library_model=LotkaVolterra,
               post_start=(1.6, 1.1, 2.7, 1.2), variants=("fit",)),
        Family("vdp", _vdp, VDP.param_names, (1.0,), (1.0, 0.0), (1.0, 1.0), np.arange(0, 10, 0.1), 4,
               observe=[0], library_model=VDP),
        Family("lotka-volterra", _lotka_volterra, LotkaVolterra.param_names, (1.5, 1.0, 3.0, 1.0), (2.5, 2.5), (0.5, 0.5),
               np.arange(0, 10, 0.1), 5, library_model=LotkaVolterra),
        Family("lorenz", _lorenz, Lorenz.param_names, (10.0, 28.0, 8/3), (0.0, 5.0, 25.0), (5.0, 5.0, 5.0),
               np.arange(0, 1, 0.01), 4, library_model=Lorenz),  # about one turn around the attractor: rugged, not hopeless
        Family("fitzhugh-nagumo", _fitzhugh_nagumo, ("a", "b", "c"), (0.2, 0.2, 3.0), (-1.0, 1.0), (0.5, 0.5),
               np.arange(0, 20, 0.2), 4, observe=[0]),
        Family("sir", _sir, ("beta", "gamma"), (0.5, 0.2), (0.95, 0.01), (0.04, 0.005), np.arange(0, 50, 0.5), 4, observe=[1]),
        Family("brusselator", _brusselator, ("a", "b"), (1.0, 3.0), (1.0, 1.0), (0.5, 0.5), np.arange(0, 20, 0.2), 4),
        Family("michaelis-menten", _michaelis_menten, ("vmax", "km"), (1.0, 0.5), (2.25,), (1.75,), np.arange(0, 8, 0.1), 6),
        Family("robertson-mild", _robertson, ("k1", "k2", "k3"), (1.0, 1000.0, 100.0), (1.0, 0.01, 0.2), (0.2, 0.01, 0.2),
               np.arange(0, 10, 0.1), 4),
        # stiff (group 'stiff', not in 'all'): scipy integrates them with Radau and with LSODA, each given the analytic Jacobian
        Family("robertson", _robertson_stiff, ("k1", "k2", "k3"), (0.04, 3e7, 1e4), (1.0, 0.0, 0.1), (0.2, 0.0, 0.1),
               np.concatenate([[0.0], np.logspace(-5, 5, 41)]), 3, log=True, jac=_robertson_stiff_jac, scipy_methods=STIFF_SCIPY),
        Family("vdp-stiff", _vdp, VDP.param_names, (math.sqrt(1e5),), (1.0, 0.0), (1.0, 1.0), np.linspace(0, 1.5, 76), 1, n=2,
               observe=[0], library_model=VDP, truth_range=((100.0, 1000.0),), ts_unit=0, jac=_vdp_jac,
               scipy_methods=STIFF_SCIPY),  # about one period (1.61 mu): two relaxation jumps
        Family("enzyme", _enzyme, ("kf", "kr", "kcat"), (1000.0, 100.0, 1.0), (1.0, 0.1, 0.0, 0.0), (0.5, 0.05, 0.0, 0.0),
               np.concatenate([[0.0], np.logspace(-4, np.log10(30), 41)]), 3, jac=_enzyme_jac, scipy_methods=STIFF_SCIPY),
        Family("oregonator", _oregonator, ("s", "w", "q"), (77.27, 0.161, 8.375e-6), (1.0, 1.0, 2.0), (0.5, 0.5, 1.0),
               np.linspace(0, 30, 121), 1, n=2, jac=_oregonator_jac,
               scipy_methods=STIFF_SCIPY),  # a burst within t < 1 (x up to about 1e5) and its decay; the period is about 280
        # hard (group 'hard', not in 'all'): ill-conditioned, wide-ranging, non-autonomous, observed late; see the module's docstring
        Family("exp-sum", _exp_sum, ("k1", "k2"), (1.0, 0.2), (2.0, 1.0), (0.5, 0.3), np.linspace(0, 20, 81), 2, n=40,
               observe=[0], group="hard", scipy_tol=HARD_SCIPY_TOL),  # estimate: the sum only, the amounts (initial states) fitted
        Family("exp-sum3", _exp_sum3, ("k1", "k2", "k3"), (2.0, 0.5, 0.1), (3.0, 1.0, 1.0), (0.5, 0.3, 0.3),
               np.linspace(0, 30, 121), 2, n=40, observe=[0], group="hard", scipy_tol=HARD_SCIPY_TOL),
        Family("pulse", _pulse, ("c", "w"), (2.0, 0.65), (PULSE_Y0,), (0.5*PULSE_Y0,), np.linspace(0, 6, 121), 2, n=40,
               log=True, uses_t=True, group="hard",
               scipy_tol=HARD_SCIPY_TOL),  # up from about 1e-2 of the peak at t = 0, down to about 1e-8 of it at t = 6
        Family("growth", _logistic, ("r", "K"), (0.5, 1e4), (100.0,), (50.0,), np.linspace(0, 25, 101), 3, n=32,
               extra_starts=("100x",), group="hard", scipy_tol=HARD_SCIPY_TOL),
        Family("forced", _forced, ("c", "k", "F"), (0.3, 2.0, 1.0), (1.0, 0.0), (1.0, 1.0), np.linspace(0, 20, 101), 3, n=32,
               observe=[0], uses_t=True, group="hard", scipy_tol=HARD_SCIPY_TOL),
        Family("late-obs", _chain, ("k1", "k2"), (0.6, 0.2), (1.0, 0.2), (0.3, 0.2), np.concatenate([[0.0], np.arange(2, 20.01, 0.25)]),
               3, n=40, first_unobserved=True, group="hard",
               scipy_tol=HARD_SCIPY_TOL),  # known state at t0 = 0, data from t = 2 on (see the docstring)
    ]
    return {f.name: f for f in fams}


class _SolveFailed(Exception):
    "A scipy solve that failed, blew up or needed more than MAX_RHS_EVALS right-hand-side evaluations."


def _block_jacobian(fam: Family, u: np.ndarray, params: list, B: int) -> np.ndarray:
    "The Jacobian (n*B, n*B) of all trajectories' right-hand sides at the stacked states u (state-major, as `solve` stacks them)."
    n = fam.dim
    blocks = np.empty((n, n, B))
    for i, row in enumerate(fam.jac(tuple(u.reshape(n, B)), params)):
        for j, v in enumerate(row): blocks[i, j] = v
    J = np.zeros((n, B, n, B))
    idx = np.arange(B)
    J[:, idx, :, idx] = blocks.transpose(2, 0, 1)  # trajectory b's block: rows i*B + b, columns j*B + b
    return J.reshape(n*B, n*B)


def solve(fam: Family, params, y0s: np.ndarray, ts: np.ndarray, rtol: float, atol: float, bound: float = math.inf,
          method: str = "LSODA") -> np.ndarray:
    """States (B, time, state) of `fam` from initial states y0s (B, state): one solve_ivp (LSODA unless `method` says otherwise) of all
    trajectories, with the family's analytic Jacobian where it has one; raises _SolveFailed."""
    B, n = y0s.shape
    params, evals = [float(p) for p in params], [0]

    def f(t, u):
        evals[0] += 1
        if evals[0] > MAX_RHS_EVALS or not np.all(np.abs(u) < bound): raise _SolveFailed("blew up or too many evaluations")
        return np.concatenate(np.broadcast_arrays(*fam.derivatives(tuple(u.reshape(n, B)), params, t)))

    jac = {} if fam.jac is None else dict(jac=lambda t, u: _block_jacobian(fam, u, params, B))
    try:
        with np.errstate(all="ignore"):
            sol = solve_ivp(f, (ts[0], ts[-1]), y0s.T.reshape(-1), method=method, t_eval=ts, rtol=rtol, atol=atol, **jac)
    except (_SolveFailed, ValueError, ArithmeticError) as e: raise _SolveFailed(str(e)) from e
    if sol.status != 0 or sol.y.shape[1] != len(ts) or not np.all(np.isfinite(sol.y)): raise _SolveFailed(sol.message)
    return sol.y.reshape(n, B, len(ts)).transpose(1, 2, 0)


@dataclass
class Problem:
    "One dataset of a family: the truth, and the data and initial states each variant works with."
    family: Family
    index: int
    truth: np.ndarray  # true parameters, (P,)
    noise: float  # the noise level it was made with
    y0: np.ndarray  # true initial states, (B, state)
    fit_data: SimODEData  # the fit variant's data: every state, the first row holds the noise-free initial state
    est_values: np.ndarray  # the estimate variant's data: the observed states, noisy throughout, (B, time, observed)
    y0_guess: np.ndarray  # the estimate variant's starting initial states, (B, state): the truth off by 20%
    seed: int  # the run's seed, for the starts

    @property
    def ts(self) -> np.ndarray: return self.family.grid(self.truth)

    def target(self, variant: str) -> tuple:
        "The values a variant fits, (B, time, observed), and the states they observe."
        if variant == "fit": return torch.stack(self.fit_data.values).double().numpy(), list(range(self.family.dim))
        return self.est_values, self.family.observe or list(range(self.family.dim))


def _rng(seed: int, fam: Family, *keys: int) -> np.random.Generator:
    "A generator seeded by the run's seed, the family's name and `keys`: the same draws whatever else the run does."
    return np.random.default_rng([seed, zlib.crc32(fam.name.encode()), *keys])


def _post_problem(fam: Family, index: int, seed: int, noise: float) -> Problem:
    """The post's data, from the post's own call in float32: dataset i's truth is row i of float32 uniform draws from
    torch.Generator().manual_seed(seed), its data are drawn with create_sim_dataset(seed=i + 10_000*seed)."""
    nominal = torch.tensor(fam.nominal)
    u = torch.rand(index + 1, len(nominal), generator=torch.Generator().manual_seed(seed))[index]
    truth = (nominal*(1 + 0.4*(u - 0.5))).double().numpy()
    data = create_sim_dataset(fam.model(truth), torch.as_tensor(fam.ts, dtype=torch.float32), num_samples=fam.trajectories,
                              sigma_noise=noise, initial_conditions_default=torch.tensor(fam.y0), sigma_initial_conditions=fam.y0_spread[0],
                              seed=index + 10_000*seed)
    values = torch.stack(data.values).double().numpy()
    return Problem(fam, index, truth, noise, values[:, 0].copy(), data, values, values[:, 0].copy(), seed)


def make_problem(fam: Family, index: int, seed: int = 0) -> Problem:
    "Dataset `index` of `fam`, the same for every method and every run with the same seed."
    noise = fam.noise[index % len(fam.noise)]
    if fam.post_start is not None: return _post_problem(fam, index, seed, noise)
    rng = _rng(seed, fam, index)
    if fam.truth_range is None: truth = np.asarray(fam.nominal)*rng.uniform(0.8, 1.2, len(fam.nominal))
    else: truth = np.exp(rng.uniform(*np.log(np.asarray(fam.truth_range, dtype=float)).T))
    y0 = np.asarray(fam.y0) + np.asarray(fam.y0_spread)*rng.uniform(-1, 1, (fam.trajectories, fam.dim))
    ts = fam.grid(truth)
    clean = solve(fam, truth, y0, ts, EVAL_RTOL, EVAL_ATOL)
    noisy = clean + noise*clean.std(axis=(0, 1))*rng.standard_normal(clean.shape)
    fit_values = noisy.copy()
    fit_values[:, 0] = y0
    observed = fam.observe or list(range(fam.dim))
    guess = y0*(1 + 0.2*rng.choice([-1.0, 1.0], y0.shape))
    data = SimODEData(torch.from_numpy(ts), list(torch.from_numpy(fit_values)))
    est_values = noisy[..., observed]
    if fam.first_unobserved: est_values[:, 0] = np.nan  # the known initial state's time: no measurement there
    return Problem(fam, index, truth, noise, y0, data, est_values, guess, seed)


def start_point(problem: Problem, kind: str) -> np.ndarray:
    """The starting parameters of a start kind: '30%', '2x' or '100x' off the truth (random directions, seeded per problem), or
    'post'."""
    fam, truth = problem.family, problem.truth
    if kind == "post": return np.asarray(fam.post_start, dtype=float)
    rng = _rng(problem.seed, fam, problem.index, zlib.crc32(kind.encode()))
    sign = rng.choice([-1.0, 1.0], len(truth))
    return truth*(1 + 0.3*sign) if kind == "30%" else truth*START_FACTORS[kind]**sign


def common_loss(problem: Problem, variant: str, params, y0s: np.ndarray) -> float:
    "The mean squared residual of a variant's data at `params` from initial states y0s, by the accurate evaluator (inf if it fails)."
    Y, observed = problem.target(variant)
    try: pred = solve(problem.family, params, y0s, problem.ts, EVAL_RTOL, EVAL_ATOL)
    except _SolveFailed: return math.inf
    r = pred[..., observed] - Y
    return float(np.mean(r[np.isfinite(Y)]**2 if np.isnan(Y).any() else r**2))  # missing values (NaN) do not count


def _library_verdict(result) -> tuple:
    "(reported success, status) of a FitResult or Estimate: its `success` and `status` where it has them, else `converged` and `message`."
    status = getattr(result, "status", None)
    success = getattr(result, "success", None)
    if success is None: success = result.converged
    if status is None: status = "converged" if result.converged else f"not converged: {result.message.split(':')[0]}"
    return bool(success), status


def run_library(problem: Problem, variant: str, start: np.ndarray, method: Optional[str] = None) -> dict:
    """`fit` (known initial states, every state observed) or `estimate` (initial states fitted, the family's observed states) from
    `start`, with their default options except the solver `method` (None: their default)."""
    fam = problem.family
    options = {} if method is None else dict(method=method)
    if variant == "fit":
        model = fam.model(start, log=fam.log)
        result = fit(model, problem.fit_data, **options)
        y0s, loss = problem.y0, result.loss
        params = [result.params[k] for k in model.param_names]
        if fam.log: params = [math.exp(p) for p in params]
    else:
        obs = Observations.from_arrays(torch.from_numpy(problem.ts), torch.from_numpy(problem.est_values))
        if fam.log: options["params"] = {k: Param(positive=True) for k in fam.names}
        result = estimate(fam.model(start), obs, y0=torch.from_numpy(problem.y0_guess), observe=fam.observe, **options)
        y0s, loss = result.initial_conditions.double().numpy(), result.ssr/result.n_data
        params = [result.params[k] for k in fam.names]
    success, status = _library_verdict(result)
    return dict(params=params, y0=y0s, reported_loss=loss, success=success, status=status, message=result.message)


_SCIPY_STATUS = {-1: "scipy: improper input", 0: "scipy: max_nfev", 1: "gtol", 2: "ftol", 3: "xtol", 4: "ftol and xtol"}


def run_scipy(problem: Problem, variant: str, start: np.ndarray, solver: Optional[str] = None) -> dict:
    """least_squares over solve_ivp (method `solver`, default the family's first) with the unknowns of `variant`: the parameters (their
    logarithms for a family fitted on a log scale), and for 'estimate' every initial state too."""
    fam = problem.family
    solver = solver or fam.scipy_methods[0]
    Y, observed = problem.target(variant)
    B, P, n = Y.shape[0], len(start), fam.dim
    seen = np.isfinite(Y) if np.isnan(Y).any() else None  # the measured values, where some are missing (NaN)
    m = Y.size if seen is None else int(seen.sum())
    bound = 1e6*(1 + np.nanmax(np.abs(Y)))  # as in the library: states beyond this are a hopeless trial point
    penalty = np.full(m, 1e3*(1 + np.nanmax(np.abs(Y))))
    fit_ic = variant == "estimate"
    scale = np.log if fam.log else np.asarray

    def unpack(x): return (np.exp(x[:P]) if fam.log else x[:P]), (x[P:].reshape(B, n) if fit_ic else problem.y0)

    def residuals(x):
        try: pred = solve(fam, *unpack(x), problem.ts, *(fam.scipy_tol or (SCIPY_RTOL, SCIPY_ATOL)), bound, method=solver)
        except _SolveFailed: return penalty
        r = pred[..., observed] - Y
        return r.reshape(-1) if seen is None else r[seen]

    start = scale(np.asarray(start, dtype=float))
    x0 = np.concatenate([start, problem.y0_guess.reshape(-1)]) if fit_ic else start
    method = "lm" if m >= len(x0) else "trf"
    r = least_squares(residuals, x0, method=method, x_scale="jac", max_nfev=100*(len(x0) + 1))
    params, y0s = unpack(r.x)
    failed_solve = np.array_equal(r.fun, penalty)
    success = r.status > 0 and not failed_solve
    status = "scipy: solver failed" if failed_solve else _SCIPY_STATUS.get(r.status, f"scipy: status {r.status}")
    return dict(params=list(params), y0=y0s, reported_loss=float(np.mean(r.fun**2)), success=success, status=status)


def methods(fam: Family, variant: str, method: Optional[str] = None) -> list:
    "(name, runner) of every method compared on a variant: the library's (named after the variant, with solver `method`), then scipy's."
    return [(variant, lambda p, v, s: run_library(p, v, s, method)),
            *((fam.scipy_label(m), lambda p, v, s, m=m: run_scipy(p, v, s, m)) for m in fam.scipy_methods)]


def _failure_kind(rec: dict, best: float) -> str:
    "Why a run missed the 10% criterion ('' when it did not), given the lowest loss known on its problem (found, or the truth's)."
    if rec["ok_10"]: return ""
    if rec["status"].startswith("exception:") or not rec["success"]: return rec["status"]
    return "best fit >10% off" if rec["loss"] <= best*(1 + TOL_LOWEST) else "wrong optimum"


def run_problem(problem: Problem, kind: str, variants=None, method: Optional[str] = None) -> list:
    "Every method of every variant on one problem from one start kind (the library with solver `method`): one record per run."
    fam, start = problem.family, start_point(problem, kind)
    records = []
    for variant in variants or fam.variants:
        runs = []
        for name, runner in methods(fam, variant, method):
            with peak_memory() as mem:
                t0 = time.perf_counter()
                try: out = runner(problem, variant, start)
                except Exception as e:  # a failure to record, not to stop the suite for
                    out = dict(params=[math.nan]*len(start), y0=None, reported_loss=math.nan, success=False,
                               status=f"exception: {type(e).__name__}", message=str(e))
                seconds = time.perf_counter() - t0
            loss = common_loss(problem, variant, out["params"], out["y0"]) if out["y0"] is not None else math.inf
            rel = np.abs(np.asarray(out["params"], dtype=float)/problem.truth - 1)
            runs.append(dict(family=fam.name, variant=variant, method=name, dataset=problem.index, start=kind,
                             noise=problem.noise, truth=problem.truth.tolist(), start_params=start.tolist(),
                             params=[float(p) for p in out["params"]],
                             y0=None if out["y0"] is None else np.asarray(out["y0"]).tolist(),
                             max_rel_err=float(np.nan_to_num(rel.max(), nan=math.inf)), ok_10=bool(np.all(rel <= TOL_10)),
                             loss=loss, reported_loss=float(out["reported_loss"]), success=out["success"], status=out["status"],
                             message=out.get("message", ""), seconds=seconds, **mem.as_dict()))
        lowest = min(r["loss"] for r in runs)
        truth_loss = common_loss(problem, variant, problem.truth, problem.y0)
        for r in runs:
            r["ok_lowest"] = bool(math.isfinite(r["loss"]) and r["loss"] <= lowest*(1 + TOL_LOWEST))
            r["truth_loss"] = truth_loss
            r["kind"] = _failure_kind(r, min(lowest, truth_loss))
        records += runs
    return records


def run_family(fam: Family, n: Optional[int] = None, seed: int = 0, variants=None, starts=None, log=None,
               method: Optional[str] = None) -> list:
    """Records of every method on `n` datasets of `fam` (default: the family's own n), each from every start kind (or those in
    `starts`), the library with solver `method` (None: the default of fit and estimate)."""
    records = []
    for i in range(fam.n if n is None else n):
        problem = make_problem(fam, i, seed)
        for kind in fam.start_kinds:
            if starts is None or kind in starts: records += run_problem(problem, kind, variants, method)
        if log is not None: print(f"{fam.name}: dataset {i + 1} done, {sum(r['ok_10'] for r in records)}/{len(records)} runs within 10%",
                                  file=log, flush=True)
    return records


def _top(xs):
    "The largest of the values that are not None (None if none)."
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def summarize(records: list, by: tuple = ("family", "variant", "method")) -> list:
    "One row per group of records (in order of appearance): run count, successes, median and worst time, worst memory, failure kinds."
    groups = {}
    for r in records: groups.setdefault(tuple(r[k] for k in by), []).append(r)
    rows = []
    for key, rs in groups.items():
        times = [r["seconds"] for r in rs]
        rows.append(dict(zip(by, key), n=len(rs), ok_10=sum(r["ok_10"] for r in rs), ok_lowest=sum(r["ok_lowest"] for r in rs),
                         median_s=statistics.median(times), worst_s=max(times), peak_mb=_top(r.get("peak_mb") for r in rs),
                         rise_mb=_top(r.get("rise_mb") for r in rs),
                         kinds=dict(Counter(r["kind"] for r in rs if r["kind"]).most_common())))
    return rows


def format_table(rows: list, by: tuple = ("family", "variant", "method")) -> str:
    "The rows of `summarize` as an aligned text table."
    def rate(k, n): return f"{k}/{n} ({100*k/n:.0f}%)"
    head = [*by, "n", "success(10%)", "success(lowest)", "median s", "worst s", "peak MB", "+MB", "failures"]
    body = [[*(str(r[k]) for k in by), str(r["n"]), rate(r["ok_10"], r["n"]), rate(r["ok_lowest"], r["n"]), f"{r['median_s']:.3f}",
             f"{r['worst_s']:.3f}", mb(r["peak_mb"]), mb(r["rise_mb"]), ", ".join(f"{k} x{c}" for k, c in r["kinds"].items()) or "-"]
            for r in rows]
    width = [max(len(x) for x in col) for col in zip(head, *body)]
    right = {"n", "success(10%)", "success(lowest)", "median s", "worst s", "peak MB", "+MB"}
    def line(cells):
        return "  ".join(c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(cells, width, head)).rstrip()
    return "\n".join([line(head), line(["-"*w for w in width]), *map(line, body)])


def family_groups(families: dict) -> dict:
    "The groups of families by name: 'all' (every family but the stiff ones and those of a group), 'stiff' and 'hard'."
    return {"all": [k for k, f in families.items() if not f.stiff and f.group is None],
            "stiff": [k for k, f in families.items() if f.stiff], "hard": [k for k, f in families.items() if f.group == "hard"]}


def main(argv=None) -> int:
    "Run the families named on the command line, print the table, and save the records if asked."
    families = make_families()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="families: " + ", ".join(families) + "; groups: all, stiff, hard")
    ap.add_argument("--families", default="all",
                    help="comma-separated family names or groups: 'all' (default; every family but the stiff and the hard ones), "
                         "'stiff', 'hard'")
    ap.add_argument("--n", type=int, default=None,
                    help="datasets per family (each fitted from every start kind); default: the family's own")
    ap.add_argument("--quick", action="store_true", help="a smoke run: one dataset per family from the 30%% start, 4 of lv-post")
    ap.add_argument("--seed", type=int, default=0, help="seed of the datasets and starts")
    ap.add_argument("--by", default="", help="also group by these record fields, comma-separated: start, noise, dataset")
    ap.add_argument("--json", default=None, help="write every run's record to this file")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--method", default=LIBRARY_METHOD,
                    help=f"the solver method of the library's fit and estimate (default: theirs, {LIBRARY_METHOD!r})")
    a = ap.parse_args(argv)
    groups = family_groups(families)
    names = [k for x in a.families.split(",") for k in groups.get(x, [x])]
    unknown = [f for f in names if f not in families]
    if unknown: ap.error(f"unknown families {unknown}; choose from {', '.join(families)}, or the groups all, stiff, hard")
    extra = [k for k in a.by.split(",") if k]
    if not set(extra) <= {"start", "noise", "dataset"}: ap.error(f"--by takes start, noise or dataset, got {a.by!r}")
    torch.set_num_threads(a.threads)
    by = ("family", "variant", "method", *extra)
    t0, records, seconds = time.perf_counter(), [], {}
    for name in names:
        fam, t1 = families[name], time.perf_counter()
        n = a.n if a.n is not None else (4 if fam.post_start else 1) if a.quick else None
        records += run_family(fam, n, a.seed, starts=("30%", "post") if a.quick else None, log=sys.stderr, method=a.method)
        seconds[name] = time.perf_counter() - t1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); seed {a.seed}; library method {a.method!r}; "
          f"{len(records)} runs in {time.perf_counter() - t0:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())})")
    print(f"success(10%): every parameter within {TOL_10:.0%} of the truth; success(lowest): loss within a relative {TOL_LOWEST:g} "
          f"of the lowest loss any method found (losses recomputed by LSODA, rtol={EVAL_RTOL:g})")
    print(f"{NOTE} (per run; the worst of the group's runs)")
    print(format_table(summarize(records, by), by))
    if a.json:
        with open(a.json, "w") as f: json.dump(records, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
