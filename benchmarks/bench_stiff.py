"""Stiff test problems: work-precision of scipy's implicit solvers, this library's methods and diffrax, and batched parameter sets.

    python benchmarks/bench_stiff.py                          # every problem, rtol 1e-3 ... 1e-10, batch of 64: about 15 min on a
                                                              # busy 2-core machine (the first run adds about 5 min of references)
    python benchmarks/bench_stiff.py --quick                  # CI smoke run: robertson and pollution, rtol 1e-4 and 1e-6, batch of 4
    python benchmarks/bench_stiff.py --problems hires,vdp1e3 --rtols 1e-4,1e-6 --methods radau,bdf,dopri5 --json out.json
    python benchmarks/bench_stiff.py --figure wp.png          # also draw the work-precision figure (error against CPU time)

Problems (standard initial values, parameters, spans; written from the published equations; output times are this script's choice):
  robertson   ROBER: Robertson's three-species reaction (H. H. Robertson 1966), as in Hairer & Wanner, Solving Ordinary Differential
              Equations II (HW-II), Sec. IV.1 and IV.10, and the Test Set for IVP Solvers (Mazzia, Magherini et al., Univ. of Bari):
              k = (0.04, 3e7, 1e4), y0 = (1, 0, 0), t to 1e11; outputs at 0 and 10^-6, 10^-5, ..., 10^11
  hires       HIRES: Schaefer's 1975 growth model of plant tissue (8 species), Test Set HIRES / HW-II IV.10: its 12 published constants,
              y0 = (1, 0, 0, 0, 0, 0, 0, 0.0057), t to 321.8122; outputs at 0, 1, 2, 5, 10, 20, 50, 100, 200, 321.8122
  pollution   POLLU: Verwer's 1994 air-pollution model of the Dutch National Institute (RIVM), 20 species, 25 reactions, as in the
              Test Set POLLU: its 25 rate constants and initial values, t to 60; outputs at 0, 0.1, 0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60
  vdp1e3      Van der Pol in the Test Set's VDPOL (and HW-II's) scaling, time in units of mu: y1' = y2, y2' = mu^2((1 - y1^2) y2 - y1),
              i.e. eps = 1/mu^2 = 1e-6 as in VDPOL; y0 = (2, 0), t to 2 (about 1.2 periods); outputs at 0, 0.2, ..., 2
  vdp1e6      the same at mu = 1e6 (eps = 1e-12); no published solution
  oregonator  OREGO: the Field-Noyes Oregonator (1974) in HW-II's form (IV.1, IV.10): s = 77.27, q = 8.375e-6, w = 0.161,
              y0 = (1, 2, 3), t to 360; outputs at 0, 30, ..., 360
  e5          E5 of the stiff DETEST set (Enright, Hull & Lindberg 1975), as in HW-II IV.10 and the Test Set E5:
              A = 7.89e-10, B = 1.1e7, C = 1.13e3, M = 1e6, y0 = (1.76e-3, 0, 0, 0), t to 1e13; outputs at 0 and 10^-5, ..., 10^13
Each problem is a torch nn.Module (`StiffModel`): its constants are one nn.Parameter `model_params` of shape (..., P) whose leading axes
broadcast against the states' (a (64, P) tensor makes 64 parameter sets of y0 (64, n)), `autonomous = True`, and an analytic
`jacobian(t, y) -> (..., n, n)`. Each is written twice: its equations on the components (as published; numpy's for scipy where
faster, JAX's), and the same as a table of monomial terms, which torch evaluates in a dozen vectorised operations (and numpy for
POLLU); tests/test_benchmarks.py checks that the two agree.

Tolerances: for each rtol, atol = rtol * scale, where scale is the problem's absolute scale (about the size below which a component's
relative error stops mattering): robertson 1e-8 (y2 peaks at 3.6e-5), hires 1e-4, pollution 1e-8, vdp 1, oregonator 1e-2 (y1 ranges
over 1 ... 1e5), e5 1e-20 (as Hairer & Wanner solve E5, with a tiny atol: its y2, y3, y4 peak at 1.4e-10 and sink to 1e-21; at
atol = rtol*1e-10 they go negative, and scipy's Radau, BDF, LSODA and rodas5p fail or blow up at most tolerances).
Error: err/rtol = max over the output times after t0 and over the components of |y - y_ref| / (atol_i + rtol*|y_ref|), i.e. the
error in units of the asked tolerance (1 = exactly the tolerance), with atol_i = rtol * err_scale_i; the accuracy target is
err/rtol <= 10. err_scale is the problem's scale except in E5: 1e-3 for y1 and 1e-10 for y2, y3, y4, what float64 resolves there
(y2, y3 below 1e-20 are the rounding error that the invariant y2 = y3 + y4 carries from the phase where they are 1e-10, and once y1
has decayed far below its start its relative value rests on the time integral of B*y3: see the class E5). The figure's error axis
is the same measure without the rtol: max |y - y_ref| / (err_scale + |y_ref|).
Reference: scipy solve_ivp's Radau at rtol 1e-13, atol 1e-13*scale, with the analytic Jacobian, restarted at every output time (so
that no reference value comes from a dense-output polynomial), computed once and cached under benchmarks/results/ (--cache) keyed by
problem, right-hand side, parameters, y0 and output times. Where Radau cannot step through at 1e-13 it is the tightest of 1e-12, 1e-11,
... at which it can (vdp1e6: 1e-10); --quick uses 1e-4 times its smallest rtol. Its own error is estimated by the same solve at 10x
its rtol, and its final values are compared with the published ones of the Test Set (ROBER, HIRES, POLLU, VDPOL; OREGO's are
HW-II's): both differences are printed.

Methods (--methods, comma-separated; the default: all but dopri5 and scipy_solver):
  radau, bdf, lsoda  scipy's Radau, BDF and LSODA classes, each with the analytic Jacobian, stepped exactly as solve_ivp(t_eval=ts)
                     steps them (written out here to count the steps); the right-hand side in numpy
  rodas5p, rodas4    this library's Rosenbrock methods, through paramfittorchdemo.solvers.integrate, on the model's own analytic
                     `jacobian` and with `autonomous = True`; each runs only when it is in paramfittorchdemo.solvers.IMPLICIT_METHODS
                     (otherwise skipped, with a note)
  auto               integrate's method='auto': dopri5 that hands the stiff groups to rodas5p (rtol < 1e-5) or rodas4 (where dopri5
                     stops first, at its step-size floor, 1e-12 of the end time, or its step budget, the row says so)
  dopri5, scipy_solver
                     this library's explicit Dormand-Prince, and torchdiffeq's scipy_solver (LSODA on the torch right-hand side,
                     finite-difference Jacobian), through the same integrate, for comparison (--quick runs dopri5, which fails on
                     these problems: its step budget, --max-steps, or its step-size floor; the table says so)
  kvaerno5           diffrax's Kvaerno5 (PIDController(rtol, atol), SaveAt(ts), jitted; compiling not timed), with the bench extra only
                     (pip install paramfittorchdemo[bench]); without JAX it is skipped with a note
Every library solve runs in float64 under torch.no_grad() with torch.set_num_threads(1) (and OMP/OpenBLAS/MKL at one thread).
Columns: cpu [s] is the median process CPU time of the timed runs (one warm-up first, which is the only run where it took over 1 s;
then up to --reps runs within about 2 s per row), wall [s] their median wall time; steps: accepted steps; rej: rejected steps (the
library, diffrax); nfe: right-hand-side evaluations (scipy's nfev excludes those of finite differences, of which there are none here;
the library's includes its Jacobians' where the model has none); njev, nlu: Jacobians and LU factorizations (scipy's njev and nlu, the
library's SolveStats.jacobians and .factorizations); peak MB, +MB: benchmarks/peak.py; note: method='auto''s hand-over.
A failed solve (step budget, --max-seconds, a solver's own failure) is a row with its reason and no error; the tighter tolerances of
a method that ran out of steps or time are skipped.
Batch: --batch parameter sets (default 64), each constant times a factor drawn log-uniformly from [0.8, 1.25] (seed --seed), at
--batch-rtol (1e-6), on --batch-problems (default: all): the library's methods in one call (y0 (B, n), model_params (B, P),
`groups=B`: each set's error controlled on its own) against a Python loop of scipy Radau (analytic Jacobian) over the sets; err/rtol
is the largest over the sets, each against its own cached reference (Radau, restarted at the output times, at 1e-3 x the batch rtol).
Targets (printed [ok] / [MISS], never the exit code): every method within err/rtol <= 10 at every tolerance; at rtol 1e-6 each
library method's CPU time at most 1.0x the best of scipy's Radau/BDF/LSODA that met its tolerance (the ratio at equal error, read
off scipy's work-precision line, is printed beside it); the batch at least 10x faster than the loop of scipy Radau.
The exit code is 1 when the reference or a scipy row could not be computed (a crash, not a missed target).
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread, set before numpy loads its BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.integrate import BDF, LSODA, Radau  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peak import NOTE, mb, measure, worst  # noqa: E402

REF_RTOL = 1e-13  # the references' rtol, or REF_MARGIN times the smallest rtol of the run where that is larger (--quick)
REF_MARGIN = 1e-4
BATCH_REF_MARGIN = 1e-3  # the batch's references: Radau at the batch rtol times this (64 solves each)
ERR_TARGET = 10.0  # err/rtol at most this
SPEED_RTOL = 1e-6
BATCH_TARGET = 10.0  # the batch at least this many times faster than the loop of scipy Radau
REP_SECONDS = 2.0  # timed runs of a row are repeated up to --reps while they fit in about this many seconds
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
JAX_NOTE = "JAX/diffrax not installed: kvaerno5 skipped (pip install paramfittorchdemo[bench])"
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


# ---------------------------------------------------------------- the problems: equations on components, and the same as terms
def _stack(entries: list, like: torch.Tensor) -> torch.Tensor:
    "Torch: the components (tensors or numbers) broadcast together and stacked on a last axis."
    ts = [e if torch.is_tensor(e) else torch.tensor(float(e), dtype=like.dtype, device=like.device) for e in entries]
    return torch.stack(torch.broadcast_tensors(*ts), dim=-1)


class StiffModel(nn.Module):
    """A stiff test problem: the right-hand side as a torch module (states (..., n), constants (..., P)), its analytic Jacobian, the
    same equations for numpy (scipy) and JAX, and the problem's data (y0, output times, absolute scale, published final values).

    Each problem is written twice: `equations` and `jacobian_entries` on the components (as published: numpy's right-hand side for
    scipy where it is the faster one, JAX's, and the readable statement), and `terms`, the same right-hand side as a sum of monomials,
    dy/dt = sum_r c_r prod(y[factors_r]) change_r, which torch evaluates in a dozen vectorised operations whatever the number of terms
    (component by component it takes hundreds of small ones; tests/test_benchmarks.py checks that the two agree)."""
    autonomous = True
    dim: int
    param_names: tuple
    defaults: tuple  # the published constants
    y0: tuple
    scale: float  # atol = rtol * scale
    err_scale: tuple | None = None  # the error measure's absolute scale per component, where it is not `scale` (E5)
    published: tuple | None = None  # the final values, as published (see `source`)
    source: str = ""
    terms: tuple  # ((coefficient, factors, {state: net change}), ...): indices from 0; coefficient indexes `coefficients(k)`
    numpy_terms = False  # numpy's right-hand side from `terms` (True) or from `equations` (False): the faster one here

    def __init__(self, params=None):  # constants, (..., P); None: the published ones
        super().__init__()
        p = torch.as_tensor(self.defaults if params is None else params, dtype=torch.float64)
        if p.shape[-1:] != (len(self.param_names),):
            raise ValueError(f"{type(self).__name__} needs constants of shape (..., {len(self.param_names)}) "
                             f"({', '.join(self.param_names)}), got {tuple(p.shape)}.")
        self.model_params = nn.Parameter(p)
        idx, S, E, cidx = self.term_arrays()
        for name, v in (("_idx", idx), ("_S", S), ("_E", E), ("_cidx", cidx)):
            self.register_buffer(name, torch.from_numpy(v), persistent=False)

    @staticmethod
    def equations(y, k) -> list:  # components of the states and of the constants -> the n components of dy/dt
        raise NotImplementedError

    @staticmethod
    def jacobian_entries(y, k) -> list:  # the same -> n rows of n entries of d(dy/dt)/dy
        raise NotImplementedError

    @staticmethod
    def coefficients(k) -> list:  # components of the constants -> the terms' distinct coefficients (default: the constants)
        return list(k)

    @staticmethod
    def output_times() -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def error_scale(cls) -> np.ndarray:
        "The error measure's absolute scale per component, (n,): `scale`, or `err_scale` where the problem sets one."
        return np.array(cls.err_scale if cls.err_scale is not None else (cls.scale,)*cls.dim, dtype=float)

    @classmethod
    def term_arrays(cls) -> tuple:
        """`terms` as arrays: factor indices (R, 3) (index n: the constant 1), net changes S (R, n), one-hot factors E (R, 3, n), and each
        term's coefficient index (R,)."""
        R, n = len(cls.terms), cls.dim
        idx, S, E = np.full((R, 3), n, dtype=np.int64), np.zeros((R, n)), np.zeros((R, 3, n))
        for r, (_, factors, changes) in enumerate(cls.terms):
            idx[r, :len(factors)] = factors
            for p, i in enumerate(factors): E[r, p, i] = 1.0
            for i, c in changes.items(): S[r, i] = c
        return idx, S, E, np.array([c for c, _, _ in cls.terms], dtype=np.int64)

    def _coefficients(self):  # the terms' coefficients, (..., R)
        k = self.model_params
        c = k if type(self).coefficients is StiffModel.coefficients else _stack(self.coefficients(k.unbind(-1)), k)
        return c[..., self._cidx]

    def _factors(self, y):  # each term's three factors, (..., R, 3)
        return torch.cat([y, torch.ones_like(y[..., :1])], dim=-1)[..., self._idx]

    def forward(self, t, y):  # states (..., n) -> derivatives (..., n)
        return (self._coefficients()*self._factors(y).prod(-1)) @ self._S.to(y.dtype)

    def jacobian(self, t, y):  # states (..., n) -> Jacobians (..., n, n)
        F0, F1, F2 = self._factors(y).unbind(-1)
        others = torch.stack([F1*F2, F0*F2, F0*F1], dim=-1)  # d(F0 F1 F2)/dF_p, (..., R, 3)
        dterms = (others.unsqueeze(-2) @ self._E.to(y.dtype)).squeeze(-2)*self._coefficients().unsqueeze(-1)  # (..., R, n)
        return self._S.T.to(y.dtype) @ dterms

    def numpy_fns(self, k=None) -> tuple:
        "(f(t, y), jac(t, y)) in numpy for scipy, at the constants k (P,) (default: this module's, which must be one set)."
        k = tuple(float(v) for v in (self.model_params.detach() if k is None else k))
        if not self.numpy_terms:
            eq, je = self.equations, self.jacobian_entries
            return (lambda t, y: np.array(eq(y, k))), (lambda t, y: np.array(je(y, k), dtype=float))
        idx, S, E, cidx = self.term_arrays()
        c, ST = np.array(self.coefficients(k), dtype=float)[cidx], S.T.copy()
        def f(t, y):
            F = np.append(y, 1.0)[idx]
            return (c*F.prod(1)) @ S
        def jac(t, y):
            F = np.append(y, 1.0)[idx]
            others = np.stack([F[:, 1]*F[:, 2], F[:, 0]*F[:, 2], F[:, 0]*F[:, 1]], axis=1)
            return ST @ (np.einsum("rp,rpn->rn", others, E)*c[:, None])
        return f, jac

    def extra_repr(self) -> str:
        p = self.model_params.detach()
        if p.ndim > 1: return f"{tuple(p.shape[:-1])} parameter sets"
        return ", ".join(f"{n}={v:.4g}" for n, v in zip(self.param_names, p.tolist()))


def _log_grid(lo: int, hi: int) -> np.ndarray:
    return np.concatenate([[0.0], 10.0**np.arange(lo, hi + 1)])


class Robertson(StiffModel):
    dim, param_names, defaults, y0, scale = 3, ("k1", "k2", "k3"), (0.04, 3e7, 1e4), (1.0, 0.0, 0.0), 1e-8
    published = (0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050)
    source = "Test Set for IVP Solvers, ROBER, t = 1e11"
    terms = ((0, (0,), {0: -1, 1: 1}), (1, (1, 1), {1: -1, 2: 1}), (2, (1, 2), {0: 1, 1: -1}))

    @staticmethod
    def equations(y, k):
        y1, y2, y3 = y
        k1, k2, k3 = k
        return [-k1*y1 + k3*y2*y3, k1*y1 - k3*y2*y3 - k2*y2*y2, k2*y2*y2]

    @staticmethod
    def jacobian_entries(y, k):
        y1, y2, y3 = y
        k1, k2, k3 = k
        return [[-k1, k3*y3, k3*y2], [k1, -k3*y3 - 2*k2*y2, -k3*y2], [0.0, 2*k2*y2, 0.0]]

    @staticmethod
    def output_times(): return _log_grid(-6, 11)


class Hires(StiffModel):
    dim, scale = 8, 1e-4
    param_names = ("k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12")
    defaults = (1.71, 0.43, 8.32, 0.0007, 8.75, 10.03, 0.035, 1.12, 1.745, 280.0, 0.69, 1.81)
    y0 = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057)
    published = (0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4, 0.1175651343283149e-2,
                 0.2386356198831331e-2, 0.6238968252742796e-2, 0.2849998395185769e-2, 0.2850001604814231e-2)
    source = "Test Set for IVP Solvers, HIRES, t = 321.8122"
    terms = ((0, (0,), {0: -1, 1: 1}), (1, (1,), {0: 1}), (2, (2,), {0: 1}), (3, (), {0: 1}), (4, (1,), {1: -1}), (5, (2,), {2: -1}),
             (1, (3,), {2: 1}), (6, (4,), {2: 1}), (2, (1,), {3: 1}), (0, (2,), {3: 1}), (7, (3,), {3: -1}), (8, (4,), {4: -1}),
             (1, (5,), {4: 1, 5: -1}), (1, (6,), {4: 1}), (9, (5, 7), {5: -1, 6: 1, 7: -1}), (10, (3,), {5: 1}), (0, (4,), {5: 1}),
             (10, (6,), {5: 1}), (11, (6,), {6: -1, 7: 1}))

    @staticmethod
    def equations(y, k):
        y1, y2, y3, y4, y5, y6, y7, y8 = y
        a, b, c, d, e, f, g, h, i, kk, l, m = k
        r = kk*y6*y8
        return [-a*y1 + b*y2 + c*y3 + d, a*y1 - e*y2, -f*y3 + b*y4 + g*y5, c*y2 + a*y3 - h*y4, -i*y5 + b*y6 + b*y7,
                -r + l*y4 + a*y5 - b*y6 + l*y7, r - m*y7, -r + m*y7]

    @staticmethod
    def jacobian_entries(y, k):
        y1, y2, y3, y4, y5, y6, y7, y8 = y
        a, b, c, d, e, f, g, h, i, kk, l, m = k
        z = 0.0
        return [[-a, b, c, z, z, z, z, z], [a, -e, z, z, z, z, z, z], [z, z, -f, b, g, z, z, z], [z, c, a, -h, z, z, z, z],
                [z, z, z, z, -i, b, b, z], [z, z, z, l, a, -kk*y8 - b, l, -kk*y6], [z, z, z, z, z, kk*y8, -m, kk*y6],
                [z, z, z, z, z, -kk*y8, m, -kk*y6]]

    @staticmethod
    def output_times(): return np.array([0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 321.8122])


# POLLU's 25 reactions: (reactants, {species: net change}), species numbered from 1 as in the Test Set; rate r_j = k_j * prod(reactants)
POLLU_REACTIONS = (
    ((1,), {1: -1, 2: 1, 3: 1}), ((2, 4), {1: 1, 2: -1, 4: -1}), ((5, 2), {1: 1, 2: -1, 5: -1, 6: 1}), ((7,), {5: 2, 7: -1, 8: 1}),
    ((7,), {7: -1, 8: 1}), ((7, 6), {5: 1, 6: -1, 7: -1, 8: 1}), ((9,), {5: 1, 8: 1, 9: -1, 10: 1}), ((9, 6), {6: -1, 9: -1, 11: 1}),
    ((11, 2), {1: 1, 2: -1, 10: 1, 11: -1, 12: 1}), ((11, 1), {1: -1, 11: -1, 13: 1}), ((13,), {1: 1, 11: 1, 13: -1}),
    ((10, 2), {1: 1, 2: -1, 10: -1, 14: 1}), ((14,), {5: 1, 7: 1, 14: -1}), ((1, 6), {1: -1, 6: -1, 15: 1}), ((3,), {3: -1, 4: 1}),
    ((4,), {4: -1, 16: 1}), ((4,), {3: 1, 4: -1}), ((16,), {6: 2, 16: -1}), ((16,), {3: 1, 16: -1}),
    ((17, 6), {5: 1, 6: -1, 17: -1, 18: 1}), ((19,), {2: 1, 19: -1}), ((19,), {1: 1, 3: 1, 19: -1}), ((1, 4), {1: -1, 4: -1, 19: 1}),
    ((19, 1), {1: -1, 19: -1, 20: 1}), ((20,), {1: 1, 19: 1, 20: -1}))


def _product(factors):
    out = 1.0
    for f in factors: out = out*f
    return out


def _mass_action(y, k, reactions, n: int) -> list:
    "dy/dt of a mass-action network: sum over the reactions of net change times rate."
    f = [0.0]*n
    for kj, (reactants, changes) in zip(k, reactions):
        r = kj*_product(y[i - 1] for i in reactants)
        for i, c in changes.items(): f[i - 1] = f[i - 1] + c*r
    return f


def _mass_action_jacobian(y, k, reactions, n: int) -> list:
    "Its Jacobian: d r_j / d y_m is k_j times the other reactants (a reactant met twice counts twice)."
    J = [[0.0]*n for _ in range(n)]
    for kj, (reactants, changes) in zip(k, reactions):
        for p, m in enumerate(reactants):
            d = kj*_product(y[i - 1] for q, i in enumerate(reactants) if q != p)
            for i, c in changes.items(): J[i - 1][m - 1] = J[i - 1][m - 1] + c*d
    return J


class Pollution(StiffModel):
    dim, scale = 20, 1e-8
    param_names = tuple(f"k{j}" for j in range(1, 26))
    defaults = (0.35, 0.266e2, 0.123e5, 0.86e-3, 0.82e-3, 0.15e5, 0.13e-3, 0.24e5, 0.165e5, 0.9e4, 0.22e-1, 0.12e5, 0.188e1, 0.163e5,
                0.48e7, 0.35e-3, 0.175e-1, 0.1e9, 0.444e12, 0.124e4, 0.21e1, 0.578e1, 0.474e-1, 0.178e4, 0.312e1)
    y0 = (0.0, 0.2, 0.0, 0.04, 0.0, 0.0, 0.1, 0.3, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.007, 0.0, 0.0, 0.0)
    published = (0.5646255480022769e-01, 0.1342484130422339e+00, 0.4139734331099427e-08, 0.5523140207484359e-02,
                 0.2018977262302196e-06, 0.1464541863493966e-06, 0.7784249118997964e-01, 0.3245075353396018e+00,
                 0.7494013383880406e-02, 0.1622293157301561e-07, 0.1135863833257075e-07, 0.2230505975721359e-02,
                 0.2087162882798630e-03, 0.1396921016840158e-04, 0.8964884856898295e-02, 0.4352846369330103e-17,
                 0.6899219696263405e-02, 0.1007803037365946e-03, 0.1772146513969984e-05, 0.5682943292316392e-04)
    source = "Test Set for IVP Solvers, POLLU, t = 60"
    terms = tuple((j, tuple(i - 1 for i in reactants), {i - 1: c for i, c in changes.items()})
                  for j, (reactants, changes) in enumerate(POLLU_REACTIONS))
    numpy_terms = True  # 25 reactions: numpy's vectorised terms beat the Python loop over them (43 vs 10 us an evaluation)

    @staticmethod
    def equations(y, k): return _mass_action(list(y), list(k), POLLU_REACTIONS, 20)

    @staticmethod
    def jacobian_entries(y, k): return _mass_action_jacobian(list(y), list(k), POLLU_REACTIONS, 20)

    @staticmethod
    def output_times(): return np.array([0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0])


class VanDerPol(StiffModel):
    dim, param_names, defaults, y0, scale = 2, ("mu",), (1e3,), (2.0, 0.0), 1.0
    published = (0.1706167732170483e1, -0.8928097010247975e0)
    source = "Test Set for IVP Solvers, VDPOL (eps = 1/mu^2 = 1e-6), t = 2"
    terms = ((0, (1,), {0: 1}), (1, (1,), {1: 1}), (1, (0, 0, 1), {1: -1}), (1, (0,), {1: -1}))

    @staticmethod
    def coefficients(k):
        (mu,) = k
        return [1.0, mu*mu]

    @staticmethod
    def equations(y, k):
        y1, y2 = y
        (mu,) = k
        return [y2, mu*mu*((1 - y1*y1)*y2 - y1)]

    @staticmethod
    def jacobian_entries(y, k):
        y1, y2 = y
        (mu,) = k
        return [[0.0, 1.0], [mu*mu*(-2*y1*y2 - 1), mu*mu*(1 - y1*y1)]]

    @staticmethod
    def output_times(): return np.linspace(0.0, 2.0, 11)


class VanDerPolStiffer(VanDerPol):
    defaults, published, source = (1e6,), None, ""  # eps = 1/mu^2 = 1e-12: no published solution


class Oregonator(StiffModel):
    dim, param_names, defaults, y0, scale = 3, ("s", "q", "w"), (77.27, 8.375e-6, 0.161), (1.0, 2.0, 3.0), 1e-2
    published = (0.1000814870318523e1, 0.1228178521549917e4, 0.1320554942846706e3)
    source = "Hairer & Wanner II, OREGO, t = 360"
    terms = ((0, (1,), {0: 1}), (0, (0,), {0: 1}), (1, (0, 0), {0: -1}), (0, (0, 1), {0: -1}), (2, (2,), {1: 1}), (2, (1,), {1: -1}),
             (2, (0, 1), {1: -1}), (3, (0,), {2: 1}), (3, (2,), {2: -1}))

    @staticmethod
    def coefficients(k):
        s, q, w = k
        return [s, s*q, 1/s, w]

    @staticmethod
    def equations(y, k):
        y1, y2, y3 = y
        s, q, w = k
        return [s*(y2 + y1*(1 - q*y1 - y2)), (y3 - (1 + y1)*y2)/s, w*(y1 - y3)]

    @staticmethod
    def jacobian_entries(y, k):
        y1, y2, y3 = y
        s, q, w = k
        return [[s*(1 - 2*q*y1 - y2), s*(1 - y1), 0.0], [-y2/s, -(1 + y1)/s, 1/s], [w, 0.0, -w]]

    @staticmethod
    def output_times(): return np.linspace(0.0, 360.0, 13)


class E5(StiffModel):
    dim, param_names, defaults, y0, scale = 4, ("A", "B", "C", "M"), (7.89e-10, 1.1e7, 1.13e3, 1e6), (1.76e-3, 0.0, 0.0, 0.0), 1e-20
    # No published values compared: at t = 1e13 its y2, y3 (~9e-23) lie below what float64 resolves (the invariant y2 = y3 + y4
    # keeps the absolute rounding error, ~1e-21, of the early phase where they are ~1e-10), and y1, y4 are ~0.
    # The error measure's scale: 1e-10 for y2, y3, y4 (so that this rounding error counts 1e-11 at most), and 1e-3 for y1: once y1
    # has decayed far below its start (1.76e-3), its relative value rests on the time integral of B*y3 and float64 does not resolve
    # it (Radau at rtol 1e-12 and 1e-13 differ by 5e-8 of y1 at t = 1e8, by 5e-10 at t = 1e6).
    err_scale = (1e-3, 1e-10, 1e-10, 1e-10)
    terms = ((0, (0,), {0: -1, 1: 1, 2: 1}), (1, (0, 2), {0: -1, 2: -1, 3: 1}), (2, (1, 2), {1: -1, 2: -1}), (3, (3,), {2: 1, 3: -1}))

    @staticmethod
    def coefficients(k):
        A, B, C, M = k
        return [A, B, M*C, C]

    @staticmethod
    def equations(y, k):
        y1, y2, y3, y4 = y
        A, B, C, M = k
        return [-A*y1 - B*y1*y3, A*y1 - M*C*y2*y3, A*y1 - B*y1*y3 - M*C*y2*y3 + C*y4, B*y1*y3 - C*y4]

    @staticmethod
    def jacobian_entries(y, k):
        y1, y2, y3, y4 = y
        A, B, C, M = k
        return [[-A - B*y3, 0.0, -B*y1, 0.0], [A, -M*C*y3, -M*C*y2, 0.0], [A - B*y3, -M*C*y3, -B*y1 - M*C*y2, C],
                [B*y3, 0.0, B*y1, -C]]

    @staticmethod
    def output_times(): return _log_grid(-5, 13)


PROBLEMS = {"robertson": Robertson, "hires": Hires, "pollution": Pollution, "vdp1e3": VanDerPol, "vdp1e6": VanDerPolStiffer,
            "oregonator": Oregonator, "e5": E5}

METHODS = {  # --methods name: (kind, label)
    "radau": ("scipy", "scipy Radau"), "bdf": ("scipy", "scipy BDF"), "lsoda": ("scipy", "scipy LSODA"),
    "rodas5p": ("implicit", "rodas5p"), "rodas4": ("implicit", "rodas4"), "auto": ("implicit", "auto"),
    "dopri5": ("explicit", "dopri5"), "scipy_solver": ("explicit", "scipy_solver"), "kvaerno5": ("jax", "diffrax Kvaerno5")}
DEFAULT_METHODS = ("radau", "bdf", "lsoda", "rodas5p", "rodas4", "auto", "kvaerno5")
SCIPY_CLASSES = {"radau": Radau, "bdf": BDF, "lsoda": LSODA}
STOPS = ("steps", "time", "memory")  # failures after which the tighter tolerances of a method are skipped


class Failed(Exception):
    "A solve that stopped before the end (its budget, or the solver's own failure): a row with a reason, not a crash."
    def __init__(self, message: str, kind: str = ""):
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------- scipy: solve_ivp's stepping, written out to count the steps
def scipy_solve(cls, f, jac, y0: np.ndarray, ts: np.ndarray, rtol: float, atol: float, max_seconds: float | None = None) -> tuple:
    """Step scipy's solver class `cls` from ts[0] to ts[-1] as solve_ivp(t_eval=ts) does (outputs from each step's dense output):
    (states (T, n), counts)."""
    solver = cls(f, ts[0], y0, ts[-1], rtol=rtol, atol=atol, jac=jac)
    ys, j, steps = np.empty((len(ts), len(y0))), 1, 0
    ys[0] = y0
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds
    while solver.status == "running":
        message = solver.step()
        if solver.status == "failed": raise Failed(f"{cls.__name__} failed near t={solver.t:.6g}: {message}", "solver")
        steps += 1
        j1 = len(ts) if solver.status == "finished" else int(np.searchsorted(ts, solver.t, side="right"))
        if j1 > j:
            ys[j:j1] = solver.dense_output()(ts[j:j1]).T
            j = j1
        if deadline is not None and time.perf_counter() > deadline:
            raise Failed(f"{cls.__name__} ran out of time (--max-seconds {max_seconds:g}) near t={solver.t:.6g}", "time")
    return ys, dict(steps=steps, nfe=solver.nfev, njev=solver.njev, nlu=solver.nlu)


# ---------------------------------------------------------------- references
def _key(*parts) -> str:
    return hashlib.sha1(json.dumps([np.asarray(p, dtype=float).tolist() if not isinstance(p, str) else p for p in parts]).encode()
                        ).hexdigest()[:12]


def _source(P) -> str:
    """The problem's right-hand side as text (its equations' and coefficients' bytecode and constants, its terms), part of a cached
    reference's key (bytecode, not source text: the source file may change while a run goes on)."""
    code = [getattr(P, f).__code__ for f in ("equations", "coefficients")]
    return "".join(c.co_code.hex() + repr(c.co_consts) + repr(c.co_names) for c in code) + repr(P.terms) + repr(P.numpy_terms)


def radau_reference(P, k, rtol: float) -> tuple:
    """Radau with the analytic Jacobian at rtol, atol = rtol * scale, restarted at every output time (carrying the step size), so that
    every value is a step's end, not a dense-output polynomial's: (states (T, n), steps)."""
    f, jac = P().numpy_fns(k)
    ts = P.output_times()
    ys, h, steps = [np.array(P.y0, dtype=float)], None, 0
    for a, b in zip(ts[:-1], ts[1:]):
        solver = Radau(f, a, ys[-1], b, rtol=rtol, atol=rtol*P.scale, jac=jac, first_step=None if h is None else min(h, b - a))
        while solver.status == "running":
            message = solver.step()
            if solver.status == "failed": raise Failed(f"Radau failed near t={solver.t:.6g}: {message}", "solver")
            steps += 1
            if solver.status == "running": h = solver.step_size
        ys.append(solver.y.copy())
    return np.array(ys), steps


def reference(name: str, rtol: float, cache: str, log) -> dict:
    """The problem's cached reference at rtol (where Radau cannot step through at rtol, the tightest tolerance up to 1000x rtol at which
    it can, said in the table), its estimated error (the same at 10x that rtol) and the published final values' difference."""
    P = PROBLEMS[name]
    ts = P.output_times()
    path = os.path.join(cache, f"stiff_ref_{name}_{_key(name, _source(P), P.defaults, P.y0, ts, P.scale, rtol, 'radau-restart-v1')}.npz")
    if os.path.exists(path):
        d = np.load(path)
        out = dict(ys=d["ys"], check=d["check"], rtol=float(d["rtol"]), steps=int(d["steps"]), seconds=float(d["seconds"]), cached=True)
    else:
        t0, tried, limit = time.perf_counter(), [], rtol*1001
        while True:
            try:
                ys, steps = radau_reference(P, None, rtol)
                break
            except Failed as e:
                tried.append(f"rtol {rtol:g}: {e}")
                rtol *= 10
                if rtol > limit: raise Failed(f"no reference for {name}: " + "; ".join(tried)) from None
        seconds = time.perf_counter() - t0
        check, _ = radau_reference(P, None, rtol*10)
        os.makedirs(cache, exist_ok=True)
        np.savez(path, ys=ys, check=check, rtol=rtol, steps=steps, seconds=seconds)
        out = dict(ys=ys, check=check, rtol=rtol, steps=steps, seconds=seconds, cached=False)
        log(f"reference {name}: Radau rtol {rtol:g}, {steps} steps, {seconds:.1f} s" + (f" ({'; '.join(tried)})" if tried else ""))
    out["self_error"] = mixed_error(out["check"], out["ys"], P.error_scale())
    out["published_diff"] = (None if P.published is None else
                             float(np.max(np.abs(out["ys"][-1] - np.array(P.published))/(P.error_scale() + np.abs(np.array(P.published))))))
    out["path"] = path
    return out


def batch_parameters(name: str, B: int, seed: int) -> np.ndarray:
    "B parameter sets (B, P): each published constant times a factor drawn log-uniformly from [0.8, 1.25]."
    P = PROBLEMS[name]
    rng = np.random.default_rng(seed)
    return np.array(P.defaults)*np.exp(rng.uniform(math.log(0.8), math.log(1.25), (B, len(P.defaults))))


def batch_reference(name: str, ks: np.ndarray, rtol: float, cache: str, log) -> np.ndarray:
    "Each parameter set's reference, (B, T, n): `radau_reference` at rtol (the batch rtol x BATCH_REF_MARGIN), cached."
    P = PROBLEMS[name]
    ts = P.output_times()
    path = os.path.join(cache, f"stiff_batch_{name}_{_key(name, _source(P), ks, P.y0, ts, P.scale, rtol, 'radau-restart-v1')}.npz")
    if os.path.exists(path): return np.load(path)["ys"]
    t0 = time.perf_counter()
    ys = np.stack([radau_reference(P, k, rtol)[0] for k in ks])
    os.makedirs(cache, exist_ok=True)
    np.savez(path, ys=ys)
    log(f"batch reference {name}: {len(ks)} sets, Radau rtol {rtol:g}, {time.perf_counter() - t0:.1f} s")
    return ys


def mixed_error(ys: np.ndarray, ref: np.ndarray, scale) -> float:
    """max over the output times after the first and the components of |y - y_ref| / (scale + |y_ref|) (scale: a number, or one per
    component); inf where y is not finite."""
    ys, ref = ys[..., 1:, :], ref[..., 1:, :]
    if not np.all(np.isfinite(ys)): return math.inf
    return float(np.max(np.abs(ys - ref)/(scale + np.abs(ref))))


# ---------------------------------------------------------------- the methods: each make_* returns run() -> (states, counts)
def make_scipy(method: str, P, k, rtol: float, a):
    f, jac = P().numpy_fns(k)
    y0, ts, cls = np.array(P.y0, dtype=float), P.output_times(), SCIPY_CLASSES[method]
    return lambda: scipy_solve(cls, f, jac, y0, ts, rtol, rtol*P.scale, a.max_seconds)


def _integrate_kwargs(integrate, rtol: float, atol: float, a, stats, groups: int | None) -> dict:
    params = inspect.signature(integrate).parameters
    kw = dict(rtol=rtol, atol=atol, max_steps=a.max_steps, stats=stats)
    if "deadline" in params: kw["deadline"] = time.perf_counter() + a.max_seconds
    if groups and "groups" in params:
        kw["groups"] = groups  # each parameter set's error controlled on its own
        if "drop_slow" in params: kw["drop_slow"] = False  # separate problems: a slow one is not dropped
    return kw


def make_library(method: str, P, k, rtol: float, a):
    """this library's integrate on the torch model (float64, no_grad): k (P,) solves y0 (1, n); k (B, P) solves y0 (B, n) in one call
    with groups=B."""
    from paramfittorchdemo.solvers import SolveStats, SolverError, integrate
    k = torch.as_tensor(np.asarray(k, dtype=float))
    model = P(k)
    B = k.shape[0] if k.ndim == 2 else None
    y0 = torch.tensor(P.y0, dtype=torch.float64).expand(B or 1, P.dim).clone()
    ts = torch.as_tensor(P.output_times())
    def run():
        stats = SolveStats()
        try:
            with torch.no_grad():
                ys = integrate(model, y0, ts, method, **_integrate_kwargs(integrate, rtol, rtol*P.scale, a, stats, B))
        except SolverError as e:
            raise Failed(str(e), e.kind or "solver") from None
        if ys.shape[-2] != len(ts):
            raise Failed(f"{method} returned {ys.shape[-2]} of the {len(ts)} output times (its solver stopped early, unreported)", "solver")
        counts = dict(steps=stats.steps, rejected=stats.rejected, nfe=stats.nfe, njev=stats.jacobians, nlu=stats.factorizations)
        if stats.alive is not None and not all(stats.alive): counts["dropped"] = int(sum(not x for x in stats.alive))
        if stats.switch: counts["switch"] = stats.switch  # method='auto': where dopri5 handed over, and to which method
        return ys.numpy() if B else ys[0].numpy(), counts
    return run


def have_jax() -> bool:
    try:
        import diffrax  # noqa: F401
        import jax  # noqa: F401
        return True
    except ImportError:
        return False


def make_diffrax(method: str, P, k, rtol: float, a):
    """diffrax's Kvaerno5 with a PID controller at (rtol, atol), SaveAt(ts), jitted (vmapped over k (B, P)); run() blocks until ready.
    The first call compiles (the warm-up, never timed)."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import diffrax
    import jax.numpy as jnp
    eq, ts = P.equations, jnp.asarray(P.output_times())
    term = diffrax.ODETerm(lambda t, y, k: jnp.stack([jnp.asarray(e, dtype=jnp.float64) for e in eq(y, k)]))
    controller = diffrax.PIDController(rtol=rtol, atol=rtol*P.scale)
    def solve(y0, k):
        sol = diffrax.diffeqsolve(term, diffrax.Kvaerno5(), ts[0], ts[-1], None, y0, args=k, saveat=diffrax.SaveAt(ts=ts),
                                  stepsize_controller=controller, max_steps=a.max_steps, throw=False)
        return sol.ys, sol.result == diffrax.RESULTS.successful, sol.stats["num_accepted_steps"], sol.stats["num_rejected_steps"]
    k = jnp.asarray(np.asarray(k, dtype=float))
    batched = k.ndim == 2
    y0 = jnp.broadcast_to(jnp.asarray(P.y0), (k.shape[0], P.dim)) if batched else jnp.asarray(P.y0)
    fn = jax.jit(jax.vmap(solve) if batched else solve)
    def run():
        ys, ok, acc, rej = jax.block_until_ready(fn(y0, k))
        ys, ok = np.array(ys), np.asarray(ok)
        if not batched and not bool(ok): raise Failed(f"Kvaerno5 did not succeed (max_steps {a.max_steps}?)", "steps")
        if batched: ys[~ok] = np.nan
        counts = dict(steps=int(np.sum(acc)), rejected=int(np.sum(rej)))
        if batched and not ok.all(): counts["dropped"] = int((~ok).sum())
        return ys, counts
    return run


MAKERS = {"scipy": make_scipy, "implicit": make_library, "explicit": make_library, "jax": make_diffrax}


# ---------------------------------------------------------------- timing
def timed(run, reps: int, warm_up: bool) -> tuple:
    """Run and measure: a warm-up (unless `warm_up` is False, or it took more than REP_SECONDS/2: then it is the one timed run), then
    up to `reps` timed runs while they fit in about REP_SECONDS. (last result, cpu seconds, wall seconds, Peaks); a Failed propagates."""
    def one():
        c0, w0 = time.process_time(), time.perf_counter()
        out, mem = measure(run)
        return out, time.process_time() - c0, time.perf_counter() - w0, mem
    cpu, wall, mems = [], [], []
    if warm_up:
        out, c, w, mem = one()
        if w > REP_SECONDS/2: return out, [c], [w], [mem]
    while len(wall) < reps:
        out, c, w, mem = one()
        cpu.append(c); wall.append(w); mems.append(mem)
        if sum(wall) + w > REP_SECONDS: break
    return out, cpu, wall, mems


def run_row(name: str, method: str, k, rtol: float, ref: np.ndarray, a, warm_up: bool) -> dict:
    "One row: the method on the problem (k (P,)) or on a batch (k (B, P), ref (B, T, n)) at rtol, timed, with its error."
    P = PROBLEMS[name]
    kind, label = METHODS[method]
    row = dict(problem=name, method=method, label=label, rtol=rtol, atol=rtol*P.scale, status="ok", reason="")
    t0 = time.perf_counter()
    try:
        run = MAKERS[kind](method, P, k, rtol, a)
        out, cpu, wall, mems = timed(run, a.reps, warm_up or kind == "jax")
    except Failed as e:
        return dict(row, status="failed", reason=str(e), kind=e.kind, seconds_to_fail=time.perf_counter() - t0)
    except Exception as e:  # a crash: reported as an error, and the run goes on
        return dict(row, status="error", reason=f"{type(e).__name__}: {e}", kind="error", seconds_to_fail=time.perf_counter() - t0)
    ys, counts = out
    mixed = mixed_error(ys, ref, P.error_scale())
    row.update(cpu=statistics.median(cpu), wall=statistics.median(wall), cpu_all=cpu, wall_all=wall, runs=len(wall), **counts,
               mixed=mixed, err=mixed/rtol, **worst(mems).as_dict())
    if ys.ndim == 3:  # a batch: the sets that failed (dropped, NaN) and the error of the others
        bad = ~np.all(np.isfinite(ys.reshape(len(ys), -1)), axis=1)
        row["failed_sets"] = int(bad.sum())
        if bad.any() and not bad.all():
            row["mixed_finished"] = mixed_error(ys[~bad], ref[~bad], P.error_scale())
    if not math.isfinite(mixed) and ys.ndim == 2: row.update(status="failed", reason="non-finite states", kind="solver")
    return row


# ---------------------------------------------------------------- the benchmark
def available_methods(methods: list, jax_ok: bool) -> tuple:
    "(methods that run, {method: why skipped})."
    from paramfittorchdemo import solvers
    implicit = tuple(getattr(solvers, "IMPLICIT_METHODS", ()))
    run, skipped = [], {}
    for m in methods:
        kind = METHODS[m][0]
        if kind == "implicit" and m not in implicit and not (m == "auto" and implicit):  # 'auto' hands stiff groups to one of them
            skipped[m] = (f"not in paramfittorchdemo.solvers.IMPLICIT_METHODS {implicit}" if hasattr(solvers, "IMPLICIT_METHODS") else
                          "paramfittorchdemo.solvers has no IMPLICIT_METHODS yet (the implicit solvers are not in this library version)")
        elif kind == "jax" and not jax_ok: skipped[m] = JAX_NOTE
        else: run.append(m)
    return run, skipped


def bench(a, log=lambda s: print(s, file=sys.stderr, flush=True)) -> dict:
    torch.set_num_threads(1)
    jax_ok = have_jax() if "kvaerno5" in a.methods else False
    if jax_ok: os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + XLA_ONE_THREAD).strip()
    methods, skipped = available_methods(a.methods, jax_ok)
    t_start = time.perf_counter()
    ref_rtol = max(REF_RTOL, min(a.rtols)*REF_MARGIN)
    refs, rows, batch, errors = {}, [], [], []
    parts = dict.fromkeys(("references", "work-precision", "batch references", "batch"), 0.0)  # wall seconds of each part
    clock = [time.perf_counter()]
    def lap(part: str):
        now = time.perf_counter()
        parts[part] += now - clock[0]
        clock[0] = now
    for name in a.problems:
        P = PROBLEMS[name]
        try:
            refs[name] = reference(name, ref_rtol, a.cache, log)
        except Exception as e:
            errors.append(f"{name}: reference: {type(e).__name__}: {e}")
            continue
        finally:
            lap("references")
        stopped = {}  # method -> the rtol at which it ran out of steps or time
        for rtol in sorted(a.rtols, reverse=True):
            for m in methods:
                if m in stopped:
                    rows.append(dict(problem=name, method=m, label=METHODS[m][1], rtol=rtol, atol=rtol*P.scale, status="skipped",
                                     reason=f"stopped at rtol {stopped[m]:g}", kind="skipped"))
                    continue
                row = run_row(name, m, np.array(P.defaults), rtol, refs[name]["ys"], a, warm_up=not a.quick)
                rows.append(row)
                log(format_row(row))
                if row.get("kind") in STOPS: stopped[m] = rtol
                if row["status"] == "error" and METHODS[m][0] == "scipy": errors.append(f"{name} {m} rtol {rtol:g}: {row['reason']}")
        lap("work-precision")
        if a.batch > 0 and name in a.batch_problems:
            ks = batch_parameters(name, a.batch, a.seed)
            try:
                bref = batch_reference(name, ks, a.batch_rtol*BATCH_REF_MARGIN, a.cache, log)
            except Exception as e:
                errors.append(f"{name}: batch reference: {type(e).__name__}: {e}")
                continue
            finally:
                lap("batch references")
            for m in ["radau"] + [m for m in methods if METHODS[m][0] != "scipy"]:
                if m == "radau":
                    row = run_loop(name, ks, bref, a)
                else:
                    row = run_row(name, m, ks, a.batch_rtol, bref, a, warm_up=not a.quick)
                row["sets"] = len(ks)
                batch.append(row)
                log(format_batch_row(row, batch))
            lap("batch")
    info = dict(versions=versions(jax_ok), threads="torch.set_num_threads(1); OMP/OPENBLAS/MKL_NUM_THREADS="
                f"{os.environ.get('OMP_NUM_THREADS')}/{os.environ.get('OPENBLAS_NUM_THREADS')}/{os.environ.get('MKL_NUM_THREADS')}",
                rtols=sorted(a.rtols, reverse=True), methods=methods, skipped=skipped, reps=a.reps, quick=a.quick, batch=a.batch,
                batch_problems=a.batch_problems, batch_rtol=a.batch_rtol, seed=a.seed, max_steps=a.max_steps, max_seconds=a.max_seconds,
                seconds=None, seconds_parts=parts,
                problems={n: dict(dim=PROBLEMS[n].dim, scale=PROBLEMS[n].scale, err_scale=PROBLEMS[n].error_scale().tolist(),
                                  t_end=float(PROBLEMS[n].output_times()[-1]), outputs=len(PROBLEMS[n].output_times()),
                                  source=PROBLEMS[n].source) for n in a.problems})
    info["seconds"] = time.perf_counter() - t_start
    return dict(info=info, references={n: {k: v for k, v in r.items() if k not in ("ys", "check")} for n, r in refs.items()},
                rows=rows, batch=batch, errors=errors)


def run_loop(name: str, ks: np.ndarray, bref: np.ndarray, a) -> dict:
    "The batch's baseline: a Python loop of scipy Radau (analytic Jacobian) over the parameter sets, at the batch rtol."
    P = PROBLEMS[name]
    runs = [make_scipy("radau", P, k, a.batch_rtol, a) for k in ks]
    def loop():
        outs = [run() for run in runs]
        return np.stack([ys for ys, _ in outs]), dict(steps=sum(c["steps"] for _, c in outs), nfe=sum(c["nfe"] for _, c in outs),
                                                      njev=sum(c["njev"] for _, c in outs), nlu=sum(c["nlu"] for _, c in outs))
    row = dict(problem=name, method="radau loop", label="scipy Radau loop", rtol=a.batch_rtol, atol=a.batch_rtol*P.scale, status="ok",
               reason="")
    try:
        (ys, counts), cpu, wall, mems = timed(loop, a.reps, not a.quick)
    except Failed as e:
        return dict(row, status="failed", reason=str(e), kind=e.kind)
    mixed = mixed_error(ys, bref, P.error_scale())
    return dict(row, cpu=statistics.median(cpu), wall=statistics.median(wall), cpu_all=cpu, wall_all=wall, runs=len(wall), **counts,
                mixed=mixed, err=mixed/a.batch_rtol, failed_sets=0, **worst(mems).as_dict())


def versions(jax_ok: bool) -> str:
    import scipy
    import paramfittorchdemo
    out = f"paramfittorchdemo {paramfittorchdemo.__version__}, torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}"
    if jax_ok:
        import diffrax
        import jax
        out += f", jax {jax.__version__}, diffrax {diffrax.__version__}"
    return out + f"; python {sys.version.split()[0]}"


# ---------------------------------------------------------------- output
def fmt(x, spec: str, none: str = "-") -> str:
    return none if x is None else format(x, spec)


HEAD = (f"{'problem':<10} {'method':<17} {'rtol':>7} {'cpu [s]':>9} {'wall [s]':>9} {'runs':>4} {'steps':>8} {'rej':>6} {'nfe':>8} "
        f"{'njev':>6} {'nlu':>7} {'err/rtol':>9} {'peak MB':>7} {'+MB':>5}  note")


def _switch_words(r: dict) -> str:
    "method='auto''s hand-over in a few words: 'rodas5p took 1/1 at t=0.0378' (its full words are in the JSON)."
    m = re.search(r"handed (\d+) of (\d+) .*? at t=([^:]+):.*; (\w+) solved", r["switch"])
    return f"{m.group(4)} took {m.group(1)}/{m.group(2)} at t={m.group(3)}" if m else r["switch"][:80]


def format_row(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['problem']:<10} {r['label']:<17} {r['rtol']:>7.0e} {r['status'].upper()}: {r['reason']}"
    note = ", ".join(([f"{r['dropped']} dropped"] if "dropped" in r else []) + ([_switch_words(r)] if "switch" in r else []))
    return (f"{r['problem']:<10} {r['label']:<17} {r['rtol']:>7.0e} {r['cpu']:>9.4f} {r['wall']:>9.4f} {r['runs']:>4} {r['steps']:>8} "
            f"{fmt(r.get('rejected'), 'd'):>6} {fmt(r.get('nfe'), 'd'):>8} {fmt(r.get('njev'), 'd'):>6} {fmt(r.get('nlu'), 'd'):>7} "
            f"{r['err']:>9.3g} {mb(r['peak_mb']):>7} {mb(r['rise_mb']):>5}  {note}")


def format_batch_row(r: dict, rows: list) -> str:
    if r["status"] != "ok":
        return f"{r['problem']:<10} {r['label']:<17} {r.get('sets', 0):>4} {r['status'].upper()}: {r['reason']}"
    loop = next((x for x in rows if x["problem"] == r["problem"] and x["method"] == "radau loop" and x["status"] == "ok"), None)
    ratio = None if loop is None or r is loop else loop["cpu"]/r["cpu"]
    note = f"{r['failed_sets']} sets failed" if r.get("failed_sets") else ""
    if r.get("mixed_finished") is not None: note += f" (the others: err/rtol {r['mixed_finished']/r['rtol']:.3g})"
    return (f"{r['problem']:<10} {r['label']:<17} {r['sets']:>4} {r['rtol']:>7.0e} {r['cpu']:>9.4f} {r['wall']:>9.4f} {r['runs']:>4} "
            f"{1e3*r['cpu']/r['sets']:>9.2f} {r['steps']:>8} {r['err']:>9.3g} {fmt(ratio, '.2f'):>8} {mb(r['peak_mb']):>7} "
            f"{mb(r['rise_mb']):>5}  {note}")


BATCH_HEAD = (f"{'problem':<10} {'method':<17} {'sets':>4} {'rtol':>7} {'cpu [s]':>9} {'wall [s]':>9} {'runs':>4} {'ms/set':>9} "
              f"{'steps':>8} {'err/rtol':>9} {'x loop':>8} {'peak MB':>7} {'+MB':>5}  note")


def print_report(res: dict):
    info = res["info"]
    print(info["versions"])
    print(f"threads: {info['threads']}; cpu: median process CPU time of the timed runs; err/rtol: max |y - y_ref| / (atol + rtol*|y_ref|)"
          f" over the outputs after t0 and the components (target <= {ERR_TARGET:g})")
    for m, why in info["skipped"].items(): print(f"skipped {m}: {why}")
    print(NOTE)
    print("\nreferences: scipy Radau, analytic Jacobian, restarted at every output time; atol = rtol * scale")
    print(f"{'problem':<10} {'dim':>3} {'scale':>7} {'rtol':>7} {'steps':>7} {'seconds':>8} {'vs rtol x10':>11} "
          f"{'vs published':>12}  source")
    for n, r in res["references"].items():
        p = info["problems"][n]
        print(f"{n:<10} {p['dim']:>3} {p['scale']:>7.0e} {r['rtol']:>7.0e} {r['steps']:>7} {r['seconds']:>8.1f} {r['self_error']:>11.1e} "
              f"{fmt(r['published_diff'], '.1e'):>12}  {p['source'] or 'no published solution'}{' (cached)' if r['cached'] else ''}")
    print("  (differences as max |a - b| / (err_scale + |b|); 'vs published': the final values)")
    for n in res["references"]:
        if PROBLEMS[n].err_scale is not None: print(f"  {n}: err_scale {PROBLEMS[n].err_scale} (the error measure's, per component)")
    print("\nwork-precision:")
    print(HEAD)
    for r in res["rows"]: print(format_row(r))
    if res["batch"]:
        print(f"\nbatch: {info['batch']} parameter sets (constants x log-uniform [0.8, 1.25], seed {info['seed']}) at rtol "
              f"{info['batch_rtol']:g}; x loop: the loop of scipy Radau's CPU time over this row's")
        print(BATCH_HEAD)
        for r in res["batch"]: print(format_batch_row(r, res["batch"]))
    print("\ntargets:")
    for line in target_lines(res): print(line)
    for e in res["errors"]: print(f"[ERROR] {e}")
    print(f"\n{info['seconds']:.0f} s in all (wall): " + ", ".join(f"{k} {v:.0f} s" for k, v in info["seconds_parts"].items()))


def _equal_error_time(rows: list, mixed: float):
    "CPU time of a method's work-precision line at this error (log-log interpolation between its rows); None outside its range."
    pts = sorted((r["mixed"], r["cpu"]) for r in rows if r["status"] == "ok" and r["mixed"] > 0 and math.isfinite(r["mixed"]))
    if len(pts) < 2 or not pts[0][0] <= mixed <= pts[-1][0]: return None
    return float(np.exp(np.interp(np.log(mixed), np.log([p[0] for p in pts]), np.log([p[1] for p in pts]))))


def targets(res: dict) -> list:
    "(what, ok or None (not measured), kind) for the issue's targets."
    out, rows = [], res["rows"]
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for p in problems:
        for m in methods:
            mine = [r for r in rows if r["problem"] == p and r["method"] == m]
            bad = [r for r in mine if r["status"] != "ok"]
            worst_row = max((r for r in mine if r["status"] == "ok"), key=lambda r: r["err"], default=None)
            if bad:
                r = bad[0]
                out.append((f"accuracy {p} {METHODS[m][1]}: {r['status']} at rtol {r['rtol']:g} ({r['reason'][:150]})", False, "accuracy"))
            elif worst_row is not None:
                ok = worst_row["err"] <= ERR_TARGET
                out.append((f"accuracy {p} {METHODS[m][1]}: largest err/rtol {worst_row['err']:.3g} (rtol {worst_row['rtol']:g}) "
                            f"{'<=' if ok else '>'} {ERR_TARGET:g} at every rtol", ok, "accuracy"))
    for p in problems:
        at = [r for r in rows if r["problem"] == p and r["rtol"] == SPEED_RTOL]
        if not at: continue
        sp = [r for r in at if METHODS[r["method"]][0] == "scipy" and r["status"] == "ok" and r["err"] <= ERR_TARGET]
        best = min(sp, key=lambda r: r["cpu"], default=None)
        for r in at:
            if METHODS[r["method"]][0] not in ("implicit", "explicit"): continue
            what = f"speed {p} {r['label']} at rtol {SPEED_RTOL:g}"
            if best is None: out.append((f"{what}: no scipy method met its tolerance", None, "speed")); continue
            if r["status"] != "ok" or r["err"] > ERR_TARGET:
                why = f"{r['status']} ({r['reason'][:120]})" if r["status"] != "ok" else f"missed its tolerance (err/rtol {r['err']:.3g})"
                out.append((f"{what}: {why}", False, "speed")); continue
            ratio = r["cpu"]/best["cpu"]
            eq = [t for t in (_equal_error_time([x for x in rows if x["problem"] == p and x["method"] == s], r["mixed"])
                              for s in SCIPY_CLASSES) if t is not None]
            eq_words = f"; at equal error {r['cpu']/min(eq):.2f}x scipy's best" if eq else "; equal error outside scipy's lines"
            out.append((f"{what}: {ratio:.2f}x the CPU time of {best['label']} ({best['cpu']:.4f} s){eq_words} (target <= 1.0x)",
                        ratio <= 1.0, "speed"))
    for r in res["batch"]:
        if r["method"] == "radau loop": continue
        loop = next((x for x in res["batch"] if x["problem"] == r["problem"] and x["method"] == "radau loop"), None)
        what = f"batch {r['problem']} {r['label']}, {r.get('sets')} sets"
        if loop is None or loop["status"] != "ok": out.append((f"{what}: no scipy loop to compare", None, "batch")); continue
        if r["status"] != "ok" or r.get("failed_sets") or r["err"] > ERR_TARGET:
            why = (r["reason"][:150] if r["status"] != "ok" else f"{r['failed_sets']} sets failed" if r.get("failed_sets")
                   else f"err/rtol {r['err']:.3g} > {ERR_TARGET:g}")
            out.append((f"{what}: {why}", False, "batch")); continue
        ratio = loop["cpu"]/r["cpu"]
        out.append((f"{what}: {ratio:.1f}x faster than the loop of scipy Radau (target >= {BATCH_TARGET:g}x)", ratio >= BATCH_TARGET,
                    "batch"))
    return out


def target_lines(res: dict) -> list:
    lines = [f"[{'skip' if ok is None else 'ok' if ok else 'MISS'}] {what}" for what, ok, _ in targets(res)]
    missing = [m for m, (kind, _) in METHODS.items() if kind == "implicit" and m in res["info"]["skipped"]]
    if missing:
        lines.append(f"[skip] the implicit methods' targets ({', '.join(missing)}): {res['info']['skipped'][missing[0]]}")
    return lines


def draw_work_precision(res: dict, problems: list | None = None):
    """The work-precision figure: per problem a log-log panel of CPU time against the error max |y - y_ref| / (err_scale + |y_ref|), one
    line per method (its rtols; failed rows left out), one legend for all panels. Returns (fig, axes); saving is the caller's."""
    import matplotlib.pyplot as plt
    rows = [r for r in res["rows"] if r["status"] == "ok"]
    problems = problems or list(dict.fromkeys(r["problem"] for r in rows))
    cols = min(3, max(1, len(problems)))
    nrows = -(-len(problems)//cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2*cols, 3.4*nrows), squeeze=False)
    handles = {}  # method -> a line of it (the legend's)
    for ax, p in zip(axes.flat, problems):
        for i, m in enumerate(METHODS):  # a colour per method, the same in every panel
            pts = sorted(((r["rtol"], max(r["mixed"], 1e-17), r["cpu"]) for r in rows if r["problem"] == p and r["method"] == m),
                         reverse=True)
            if pts: handles[m], = ax.loglog([q[1] for q in pts], [q[2] for q in pts], marker="o", ms=3, color=f"C{i}", label=METHODS[m][1])
        ax.set_title(p)
        ax.set_xlabel("error (mixed)")
        ax.set_ylabel("CPU time [s]")
        ax.grid(True, which="major", alpha=0.3)
    for ax in list(axes.flat)[len(problems):]: ax.set_visible(False)
    if handles: axes.flat[0].legend(list(handles.values()), [h.get_label() for h in handles.values()], fontsize=7)
    fig.tight_layout()
    return fig, axes


# ---------------------------------------------------------------- main
DEFAULT_RTOLS = "1e-3,1e-4,1e-6,1e-8,1e-10"  # the issue's range; --rtols 1e-3,1e-4,1e-5,1e-6,1e-7,1e-8,1e-9,1e-10 for every decade
QUICK = dict(problems="robertson,pollution", rtols="1e-4,1e-6", batch=4, reps=1, methods=",".join(DEFAULT_METHODS + ("dopri5",)))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"CI smoke run: problems {QUICK['problems']}, rtols {QUICK['rtols']}, batch {QUICK['batch']}, one run, no warm-up")
    ap.add_argument("--problems", default=None, help=f"comma-separated subset of {','.join(PROBLEMS)} (default: all)")
    ap.add_argument("--rtols", default=None, help=f"comma-separated relative tolerances (default {DEFAULT_RTOLS})")
    ap.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(METHODS)} (default: "
                    f"{','.join(DEFAULT_METHODS)}; --quick adds dopri5)")
    ap.add_argument("--reps", type=int, default=None, help="timed runs per row, at most (median; default 5, --quick 1)")
    ap.add_argument("--batch", type=int, default=None, help="parameter sets of the batch rows (default 64, --quick 4; 0: none)")
    ap.add_argument("--batch-rtol", type=float, default=1e-6, help="rtol of the batch rows")
    ap.add_argument("--batch-problems", default=None, help="comma-separated problems of the batch rows (default: those of --problems)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the batch's parameter sets")
    ap.add_argument("--max-steps", type=int, default=100_000, help="step budget of a library or diffrax solve")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="time budget of one solve (library and scipy rows)")
    ap.add_argument("--cache", default=RESULTS, help="folder of the cached references")
    ap.add_argument("--json", help="also write every number to this JSON file")
    ap.add_argument("--figure", help="also draw the work-precision figure into this file (png, pdf, svg)")
    a = ap.parse_args(argv)
    q = QUICK if a.quick else {}
    a.problems = [p.strip() for p in (a.problems or q.get("problems") or ",".join(PROBLEMS)).split(",") if p.strip()]
    a.methods = [m.strip() for m in (a.methods or q.get("methods") or ",".join(DEFAULT_METHODS)).split(",") if m.strip()]
    a.batch_problems = [p.strip() for p in (a.batch_problems or ",".join(a.problems)).split(",") if p.strip()]
    for what, got, known in (("problem", a.problems, PROBLEMS), ("method", a.methods, METHODS),
                             ("batch problem", a.batch_problems, a.problems)):
        bad = [x for x in got if x not in known]
        if bad: ap.error(f"unknown {what}(s) {bad}; choose from {', '.join(known)}")
    try:
        a.rtols = [float(x) for x in (a.rtols or q.get("rtols") or DEFAULT_RTOLS).split(",") if x.strip()]
    except ValueError:
        ap.error(f"--rtols needs comma-separated numbers such as 1e-4,1e-6, got {a.rtols!r}")
    if not a.rtols or not all(0 < r < 1 for r in a.rtols): ap.error(f"--rtols must be numbers in (0, 1), got {a.rtols}")
    a.reps = a.reps if a.reps is not None else q.get("reps", 5)
    a.batch = a.batch if a.batch is not None else q.get("batch", 64)
    if a.reps < 1: ap.error(f"--reps must be at least 1, got {a.reps}")
    if a.batch < 0: ap.error(f"--batch must be 0 or more, got {a.batch}")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    res = bench(a)
    print_report(res)
    if a.json:
        res["targets"] = [dict(what=w, ok=ok, kind=k) for w, ok, k in targets(res)]
        with open(a.json, "w") as fh: json.dump(res, fh, indent=1, default=float)
    if a.figure:
        import matplotlib
        matplotlib.use("Agg")
        fig, _ = draw_work_precision(res)
        fig.savefig(a.figure, dpi=120)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
