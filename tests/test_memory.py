"""Memory budgets: steps counted without building plans, and every solve under autograd bounded by `max_memory`.

A solve under autograd keeps every step's saved tensors until the gradient is taken: about 175 kB per dopri5 step of a three-state
model. Step budgets bound time, not memory, so each solve that records a graph also has a memory budget, checked before the step
that would pass it; a fixed grid (whose steps are known) is refused after its first step.
"""
import importlib.util
import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
import torch
from torchdiffeq import odeint

from paramfittorchdemo import (DivergenceError, FunctionODE, NeuralDiffEq, ODEBlock, VDP, create_sim_dataset, fit, simulate, train)
from paramfittorchdemo._checks import MAX_MEMORY
from paramfittorchdemo.solvers.explicit import (GRAPH_TENSOR_BYTES, PLAN_PIECE, MLPAdjoint, SolverError, SolveStats, _GraphMemory, _PLANS,
                                                _rk4_plan, _rk4_steps, _whole_plan, dopri5, rk4)
from paramfittorchdemo.solvers import integrate

f64 = dict(dtype=torch.float64)


def robertson(t, y, k1, k2, k3):
    a, b, c = y.unbind(-1)
    return torch.stack([-k1*a + k3*b*c, k1*a - k2*b*b - k3*b*c, k2*b*b], -1)


def rober():
    return FunctionODE(robertson, 3, k1=0.04, k2=3e7, k3=1e4).double()


def python_peak(fn) -> int:
    "Peak bytes of Python objects allocated while fn runs (the plans are Python lists and 0-d tensors' Python objects)."
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- steps counted, never built -----------------------------------------------------------------------------------------------


def test_fits_counts_steps_without_building_the_plan():
    "The issue's case: 10 million rk4 steps took 45 s and 19.2 GB just to be counted."
    adj = MLPAdjoint(NeuralDiffEq(2).ann)
    before = len(_PLANS)
    peak = python_peak(lambda: adj.fits(torch.linspace(0, 1e5, 100), 0.01, 64))
    assert not adj.fits(torch.linspace(0, 1e5, 100), 0.01, 64)
    assert adj.fits(torch.linspace(0, 30, 100), 0.1, 5)
    assert peak < 1e6, f"counting 10 million steps allocated {peak} bytes"
    assert len(_PLANS) == before  # nothing cached


def test_step_budget_refused_before_any_plan():
    "integrate's rk4 refusal promised 'before any work' but built a 1-million-step plan (2.4 GB) first."
    peak = python_peak(lambda: pytest.raises(SolverError, integrate, VDP(0.3), torch.ones(1, 2), torch.linspace(0, 1e4, 3), "rk4",
                                             step_size=0.01, max_steps=1000))
    assert peak < 1e6
    with pytest.raises(SolverError, match="rk4 would take 1000000 steps over"):
        integrate(VDP(0.3), torch.ones(1, 2), torch.linspace(0, 1e4, 3), "rk4", step_size=0.01, max_steps=1000)
    adj = MLPAdjoint(NeuralDiffEq(2).ann)
    with pytest.raises(SolverError, match="more than max_steps=50"):
        adj.loss_and_grad(torch.ones(2, 2), torch.linspace(0, 1e4, 5), torch.zeros(2, 5, 2), 0.001, max_steps=50)


@pytest.mark.parametrize("step", [0.01, 0.0123, None])
def test_rk4_step_count_matches_the_grid(step):
    ts = torch.linspace(0, 7.3, 40, **f64) if step else torch.linspace(0, 7.3, 5000, **f64)
    gl, plan = _whole_plan(ts, step, torch.float64)
    assert _rk4_steps(ts, step) == len(gl) - 1 == len(plan)
    assert sum(len(p) for p in plan) == len(ts) - 1  # every output time after the first is covered once


@pytest.mark.parametrize("step", [0.0007, None])
def test_long_rk4_grid_planned_in_pieces_gives_torchdiffeqs_numbers(step):
    "A grid of more than one piece: the same numbers as torchdiffeq, and no piece is cached."
    m = VDP(0.5).double()
    ts = torch.linspace(0, 6, 7, **f64) if step else torch.linspace(0, 6, 3*PLAN_PIECE + 17, **f64)
    assert _rk4_steps(ts, step) > 2*PLAN_PIECE
    y0 = torch.tensor([[1.0, 0.3], [-0.4, 2.0]], **f64)
    before = len(_PLANS)
    with torch.no_grad():
        ours = rk4(m, y0, ts, step)
        ref = odeint(m, y0, ts, method="rk4", **({} if step is None else dict(options=dict(step_size=step)))).movedim(0, -2)
    assert torch.equal(ours, ref)
    assert len(_PLANS) == before


def test_long_rk4_plan_uses_memory_of_a_piece():
    """rk4 walks a long grid's plan piece by piece, none cached: over 1,000,000 steps resident memory grows by a few MB, where the whole
    plan (grid floats, output plan and three 0-d stage-time tensors per step) takes about 235 MB (23.5 MB measured for 100,000 steps)."""
    ts = torch.linspace(0, 10_000, 3, **f64)
    assert _rk4_steps(ts, 0.01) == 1_000_000
    before = len(_PLANS)
    spec = importlib.util.spec_from_file_location("peak", Path(__file__).resolve().parents[1]/"benchmarks"/"peak.py")
    peak = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(peak)
    sizes, walked = peak.measure(lambda: [len(p[1]) for p in _rk4_plan(ts, 0.01, torch.float64)])  # as rk4 walks it
    assert sum(sizes) == 1_000_000 and max(sizes) == PLAN_PIECE and len(_PLANS) == before
    if peak.RESETS: assert walked.rise < 60e6, walked  # where the peak can be reset (Linux)


# --- the memory budget of a solve under autograd ------------------------------------------------------------------------------


def test_graph_memory_measures_the_first_step_only():
    vdp = VDP(0.3).double()
    y0 = torch.tensor([[2.0, 0.0]], **f64)
    mem = _GraphMemory(1e6)
    mem.first(lambda y: y + 0.1*vdp(0.0, y), y0)
    assert mem.on and mem.per_step >= GRAPH_TENSOR_BYTES
    per = mem.per_step
    mem.first(lambda y: y + 0.1*vdp(0.0, y), y0)  # not measured again
    assert mem.per_step == per
    assert not mem.over(1e6//per) and mem.over(1e6//per + 1)
    assert "max_memory=1 MB" in mem.words(500)
    with torch.no_grad():  # no graph: nothing to measure, nothing to check
        off = _GraphMemory(1.0)
        off.first(lambda y: y + 0.1*vdp(0.0, y), y0)
        assert not off.on and not off.over(10**9)
    nothing = _GraphMemory(1.0)  # grad on, but nothing requires it: no graph either
    nothing.first(lambda y: y + 1.0, y0)
    assert not nothing.on and not nothing.over(10**9)
    assert not _GraphMemory(None).on


@pytest.mark.parametrize("method", ["dopri5", "rk4", "bosh3", "euler", "midpoint", "dopri8"])
def test_every_method_stops_at_its_memory_budget(method):
    vdp = VDP(0.3).double()
    y0 = torch.tensor([[2.0, 0.0]], **f64)
    ts = torch.linspace(0, 2000, 5, **f64)
    kw = dict(step_size=0.01) if method in ("rk4", "euler", "midpoint") else {}
    with pytest.raises(SolverError, match=r"would pass max_memory=2 MB") as e:
        integrate(vdp, y0, ts, method, max_steps=10**6, max_memory=2e6, **kw)
    assert e.value.kind == "memory"
    assert "torch.no_grad()" in str(e.value) and "raise max_memory" in str(e.value)
    whole = {"rk4": "at 200000 steps", "euler": "at 200000 evaluations", "midpoint": "at 400000 evaluations"}  # a fixed grid: refused
    if method in whole: assert whole[method] in str(e.value)  # for all of its steps at once
    with torch.no_grad():
        out = integrate(vdp, y0, torch.linspace(0, 20, 5, **f64), method, max_steps=10**6, max_memory=2e6, **kw)
    assert out.shape == (1, 5, 2) and torch.isfinite(out).all()


def test_grouped_dopri5_under_autograd_drops_the_groups_it_cannot_keep():
    vdp = VDP(0.3).double()  # autonomous: a step size per group
    y0 = torch.tensor([[[2.0, 0.0]], [[1.0, 0.5]]], **f64)  # (groups, batch, state)
    st = SolveStats()
    with pytest.raises(SolverError, match="max_memory"):
        dopri5(vdp, y0, torch.linspace(0, 3000, 5, **f64), groups=2, max_steps=10**6, max_memory=1e6, stats=st)


def test_simulate_under_autograd_has_a_memory_budget():
    "The issue's case: Robertson's kinetics under autograd reached 19 GB before the step budget; now it stops at max_memory."
    m = rober()
    y0 = torch.tensor([[1.0, 0.0, 0.0]], **f64)
    ts = torch.tensor([0.0, 40.0], **f64)
    with pytest.raises(SolverError, match="simulate of FunctionODE: dopri5 stopped near t=.*would pass max_memory=20 MB") as e:
        simulate(m, y0, ts, method="dopri5", max_memory=2e7)
    assert e.value.kind == "memory"
    assert torch.isfinite(simulate(m, y0, ts, max_memory=2e7)).all()  # the default, 'auto', hands it to an implicit method: few steps
    with pytest.raises(ValueError, match="simulate needs max_memory as a positive finite number of bytes"):
        simulate(m, y0, ts, max_memory=-1)
    assert simulate(VDP(0.3), torch.ones(1, 2), torch.linspace(0, 1, 3)).requires_grad  # the default budget lets short solves through
    with torch.no_grad():
        assert torch.isfinite(simulate(VDP(0.3), torch.ones(1, 2), torch.linspace(0, 50, 3), max_memory=1.0)).all()


def test_train_stops_at_the_memory_budget_with_its_history():
    torch.manual_seed(0)
    data = create_sim_dataset(VDP(0.3), torch.linspace(0, 10, 11), num_samples=4, sigma_noise=0.01)
    model = NeuralDiffEq(2)  # dopri5 through a network: gradients by autograd, which keeps a graph
    with pytest.raises(DivergenceError, match="max_memory=10 kB") as e:
        train(model, data, epochs=2, method="dopri5", max_memory=1e4, show_every=None)
    assert "batch_size" in str(e.value) and e.value.history is not None
    assert all(torch.isfinite(p).all() for p in model.parameters())
    small = create_sim_dataset(VDP(0.3), torch.linspace(0, 10, 11), num_samples=4, sigma_noise=0.01)
    assert len(train(VDP(0.1), small, epochs=1, method="dopri5", max_memory=1e4, show_every=None).loss) == 1  # VDP: complex step, no graph
    with pytest.raises(ValueError, match="train needs max_memory"):
        train(VDP(0.1), data, epochs=1, max_memory=0)
    h = train(VDP(0.1), data, epochs=1, method="dopri5", show_every=None, max_memory=None)  # no limit
    assert len(h.loss) == 1


def test_fit_gradient_path_reports_the_memory_budget():
    torch.manual_seed(0)
    data = create_sim_dataset(VDP(0.3), torch.linspace(0, 10, 11), num_samples=4, sigma_noise=0.01)
    net = NeuralDiffEq(2)
    with pytest.raises(SolverError, match="fit of NeuralDiffEq: .*max_memory=10 kB"):
        fit(net, data, optimizer="lbfgs", max_iter=2, max_memory=1e4)
    with pytest.raises(ValueError, match="fit needs max_memory"):
        fit(VDP(0.1), data, max_memory=float("nan"))


def test_ode_block_has_a_memory_budget():
    block = ODEBlock(NeuralDiffEq(2), torch.linspace(0, 100, 3), method="rk4", step_size=0.01, max_memory=1e6)
    with pytest.raises(SolverError, match="rk4 stopped before its second step"):
        block(torch.ones(4, 2))
    with pytest.raises(ValueError, match="ODEBlock needs max_memory"):
        ODEBlock(NeuralDiffEq(2), torch.linspace(0, 1, 3), max_memory=-5)
    assert ODEBlock(NeuralDiffEq(2), torch.linspace(0, 1, 3)).max_memory == MAX_MEMORY


def test_estimate_per_step_is_close_to_the_memory_really_kept(tmp_path):
    """GRAPH_TENSOR_BYTES is calibrated: the budget's estimate of a long solve's graph is within a factor of two of the resident memory it
    really adds (in a fresh process, so nothing freed earlier is reused)."""
    script = textwrap.dedent("""
        import json, torch
        from paramfittorchdemo.solvers import integrate, SolveStats
        from paramfittorchdemo import FunctionODE
        def rss(): return int(open('/proc/self/statm').read().split()[1])*4096
        def rob(t, y, k1, k2, k3):
            a, b, c = y.unbind(-1)
            return torch.stack([-k1*a + k3*b*c, k1*a - k2*b*b - k3*b*c, k2*b*b], -1)
        m = FunctionODE(rob, 3, k1=0.04, k2=3e7, k3=1e4).double()
        y0 = torch.tensor([[1.0, 0, 0]], dtype=torch.float64).repeat(200, 1)
        integrate(m, y0[:1], torch.tensor([0.0, 1e-4], dtype=torch.float64))  # warm up torch's allocations
        st, r0 = SolveStats(), rss()
        ys = integrate(m, y0, torch.tensor([0.0, 1.5], dtype=torch.float64), max_steps=10**6, stats=st)
        grown = rss() - r0
        print(json.dumps(dict(steps=st.steps, grown=grown)))
    """)
    if not sys.platform.startswith("linux"): pytest.skip("reads /proc/self/statm")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # the estimate of the same solve, through the budget's own measurement
    m = rober()
    y0 = torch.tensor([[1.0, 0, 0]], **f64).repeat(200, 1)
    with pytest.raises(SolverError, match="max_memory") as e:
        integrate(m, y0, torch.tensor([0.0, 1.5], **f64), max_steps=10**6, max_memory=1.0)
    per_step = float(str(e.value).split("(about ")[1].split(" per step")[0].replace(" kB", "e3").replace(" MB", "e6"))
    estimate = per_step*got["steps"]
    assert got["steps"] > 500
    assert 0.5 < estimate/got["grown"] < 2.0, (estimate, got)
