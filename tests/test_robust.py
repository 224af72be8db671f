"""The robustness suite at reduced size: its models agree with its scipy right-hand sides, it runs without exceptions, and on
the same problems the library succeeds (every parameter within 10% of the truth) at least as often as scipy. The stiff
families are checked for their Jacobians and that every method's run is recorded, not (yet) for the library's success; the
hard families for their solutions against closed forms (both the numpy path and the torch models, with time where the system
depends on it), the late-observation layout, the 100x start and that every method's run is recorded."""
import importlib.util
import inspect
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("scipy")
from paramfittorchdemo.fitting import fit  # noqa: E402
from paramfittorchdemo.observations import Observations  # noqa: E402
from paramfittorchdemo.solvers import ParamSpec, integrate, rhs_traits  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_robust.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_robust", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    torch.set_num_threads(1)
    return mod


def test_suite_has_the_required_families(bench):
    fams = bench.make_families()
    assert {"lv-post", "vdp", "lotka-volterra", "lorenz"} <= set(fams)
    assert sum(f.library_model is None for f in fams.values()) >= 4  # systems that are not built in
    post = fams["lv-post"]
    assert (post.n, post.trajectories, post.noise, post.post_start) == (256, 10, (0.1,), (1.6, 1.1, 2.7, 1.2))


def test_models_match_the_scipy_right_hand_sides(bench):
    "The torch model (the library's class for built-in systems) and the numpy rhs scipy integrates are the same equations."
    gen = np.random.default_rng(0)
    for fam in bench.make_families().values():
        p = np.asarray(fam.nominal)*gen.uniform(0.8, 1.2, len(fam.nominal))
        y = np.asarray(fam.y0) + np.asarray(fam.y0_spread)*gen.uniform(-1, 1, (5, fam.dim)) + 0.1
        t = 1.7  # the non-autonomous systems (pulse, forced) depend on it; the others ignore it
        with torch.no_grad(): got = fam.model(p).double()(torch.tensor(t, dtype=torch.float64), torch.from_numpy(y)).numpy()
        want = np.stack(np.broadcast_arrays(*fam.derivatives(tuple(y.T), list(p), t)), axis=-1)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=fam.name)


def test_stiff_families_have_their_exact_jacobians_and_log_models(bench):
    "The analytic Jacobians scipy's implicit solvers get are autograd's of the torch models; log models are the same equations."
    gen = np.random.default_rng(1)
    stiff = [f for f in bench.make_families().values() if f.stiff]
    assert {f.name for f in stiff} == {"robertson", "vdp-stiff", "enzyme", "oregonator"}
    for fam in stiff:
        p = (np.asarray(fam.nominal)*gen.uniform(0.8, 1.2, len(fam.nominal))).astype(np.float32).astype(float)  # as VDP holds them
        model = fam.model(p).double()
        for _ in range(3):
            y = np.asarray(fam.y0) + np.asarray(fam.y0_spread)*gen.uniform(-1, 1, fam.dim) + gen.uniform(0.1, 1, fam.dim)
            want = torch.autograd.functional.jacobian(lambda u: model(torch.zeros(()), u), torch.from_numpy(y)).numpy()
            got = np.array([[float(v) for v in row] for row in fam.jac(tuple(y), list(p))])
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=fam.name)
        if fam.log:
            log_model = fam.model(p, log=True)
            assert log_model.param_names == tuple(f"log_{k}" for k in fam.names)
            u = torch.from_numpy(np.asarray(fam.y0) + 0.1)
            with torch.no_grad(): torch.testing.assert_close(log_model(torch.zeros(()), u), model(torch.zeros(()), u))


def test_stiff_van_der_pol_spans_mu_100_to_1000_on_a_grid_in_units_of_mu(bench):
    fam = bench.make_families()["vdp-stiff"]
    mus = []
    for i in range(4):
        problem = bench.make_problem(fam, i)
        mu = problem.truth[0]
        assert 100 <= mu <= 1000
        np.testing.assert_allclose(problem.ts, fam.ts*mu)
        assert problem.est_values.shape == (fam.trajectories, len(fam.ts), 1)  # estimate observes x only
        np.testing.assert_allclose(problem.fit_data.ts[0].numpy(), problem.ts)  # the data fit sees share that grid
        mus.append(mu)
    assert max(mus)/min(mus) > 1.5  # log-uniform draws, not one value


def test_new_systems_get_population_solves_and_complex_step_jacobians(bench):
    for fam in bench.make_families().values():
        if fam.library_model is not None: continue
        model = fam.model(fam.nominal)
        spec = ParamSpec.of(model)
        assert rhs_traits(model, spec, spec.vector(model), fam.dim) == (True, "complex"), fam.name


def test_problems_are_reproducible_and_starts_are_off_as_specified(bench):
    fam = bench.make_families()["sir"]
    a, b = bench.make_problem(fam, 3, seed=5), bench.make_problem(fam, 3, seed=5)
    assert np.array_equal(a.est_values, b.est_values) and np.array_equal(a.truth, b.truth)
    assert np.all(np.abs(a.truth/np.asarray(fam.nominal) - 1) <= 0.2)
    assert torch.equal(a.fit_data.values[0][0], torch.from_numpy(a.y0[0]))  # fit's initial states: the noise-free ones
    assert a.est_values.shape == (fam.trajectories, len(fam.ts), 1)  # SIR's estimate variant sees only the infected
    assert np.allclose(np.abs(bench.start_point(a, "30%")/a.truth - 1), 0.3)
    assert np.allclose(np.abs(np.log2(bench.start_point(a, "2x")/a.truth)), 1.0)


# datasets per family (under a minute on 2 cores): the post's problem, the built-in systems, three new ones, and partial
# observation in the estimate variant (VDP: x, SIR: I, FitzHugh-Nagumo: v)
REDUCED = {"lv-post": 16, "vdp": 2, "lotka-volterra": 1, "lorenz": 1, "sir": 2, "michaelis-menten": 2, "fitzhugh-nagumo": 1}


@pytest.mark.parametrize("name", list(REDUCED))
def test_library_succeeds_at_least_as_often_as_scipy(bench, name):
    fam = bench.make_families()[name]
    records = bench.run_family(fam, REDUCED[name], seed=0)
    assert len(records) == REDUCED[name]*len(fam.start_kinds)*len(fam.variants)*2
    raised = [(r["method"], r["dataset"], r["start"], r["status"]) for r in records if r["status"].startswith("exception")]
    # Fails on the code of 59e4267 for fitzhugh-nagumo: estimate from the 2x start raises DivergenceError ("the starting
    # parameters give a solution that is not finite") although the start's solution is finite: the step taken from the
    # loose phase's last Jacobian lands where the tight phase's first solve blows up.
    assert not raised, raised
    behind = []
    for variant in fam.variants:  # the library's method is named after the variant: fit, estimate
        runs = [r for r in records if r["variant"] == variant]
        library = sum(r["ok_10"] for r in runs if r["method"] == variant)
        scipy = sum(r["ok_10"] for r in runs if r["method"] == "scipy")
        kinds = Counter(r["kind"] for r in runs if r["method"] == variant and r["kind"])
        if library < scipy: behind.append(f"{variant}: library {library}, scipy {scipy} of {len(runs)//2} ({dict(kinds)})")
    # Fails on the code of 59e4267 for lv-post (fit 13/16, scipy 16/16), lorenz (estimate 1/2, 2/2) and sir (fit 3/4, 4/4;
    # estimate 1/4, 4/4): Levenberg-Marquardt gives up after a few iterations while still far from the optimum
    # ("reached max_iter=100" from fit, "stalled" from estimate); the fix is under way.
    assert not behind, f"{name}: " + "; ".join(behind)


def test_command_line_prints_the_table_and_saves_records(bench, tmp_path, capsys):
    out = tmp_path/"runs.json"
    assert bench.main(["--families", "michaelis-menten", "--n", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "success(10%)" in text and "michaelis-menten  estimate  scipy" in text and "peak MB" in text
    records = json.loads(out.read_text())
    assert len(records) == 8 and {r["method"] for r in records} == {"fit", "estimate", "scipy"}
    assert all(r["peak_mb"] > 100 for r in records)  # this process's resident peak while the run ran: torch alone keeps >100 MB


def test_method_option_reaches_the_library_and_its_failures_are_recorded(bench, monkeypatch, capsys, tmp_path):
    "--method goes to fit and estimate (default: fit's own default); a library that raises is a recorded failure, not a crash."
    seen = []

    def refuse(model, data, **options):
        seen.append(options.get("method"))
        raise RuntimeError(f"no solver {options.get('method')}")

    def stay(problem, variant, start, solver):  # scipy's rows, kept out of the way: they stay at the start
        return dict(params=list(start), y0=problem.y0, reported_loss=0.0, success=True, status=f"stayed ({solver})")

    monkeypatch.setattr(bench, "fit", refuse)
    monkeypatch.setattr(bench, "estimate", refuse)
    monkeypatch.setattr(bench, "run_scipy", stay)
    out = tmp_path/"runs.json"
    default = inspect.signature(fit).parameters["method"].default
    for argv, method in [(["--method", "rodas4"], "rodas4"), ([], default)]:
        seen.clear()
        assert bench.main(["--families", "robertson", "--quick", "--json", str(out), *argv]) == 0
        assert seen == [method, method]
        assert f"library method {method!r}" in capsys.readouterr().out
        records = json.loads(out.read_text())
        library = [r for r in records if r["method"] in ("fit", "estimate")]
        assert [(r["status"], r["message"], r["ok_10"], r["kind"]) for r in library] == \
            [("exception: RuntimeError", f"no solver {method}", False, "exception: RuntimeError")]*2
        scipy = {(r["method"], r["status"]) for r in records if r["method"] not in ("fit", "estimate")}
        assert scipy == {("scipy Radau", "stayed (Radau)"), ("scipy LSODA", "stayed (LSODA)")}  # one row per solve_ivp method


def test_stiff_group_runs_every_method_and_records_the_library_verdict(bench, tmp_path, capsys):
    """The --quick path over the stiff families (one dataset, the 30% start): scipy's rows finish with a working solver, the
    library's rows are recorded with its status and message whatever they are, and the table shows every row."""
    out = tmp_path/"stiff.json"
    assert bench.main(["--families", "stiff", "--quick", "--json", str(out)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    records = json.loads(out.read_text())
    stiff = [f for f in bench.make_families().values() if f.stiff]
    assert len(records) == len(stiff)*2*3
    for fam in stiff:
        for variant in fam.variants:
            rows = {r["method"]: r for r in records if r["family"] == fam.name and r["variant"] == variant}
            assert set(rows) == {variant, "scipy Radau", "scipy LSODA"}, (fam.name, variant)
            for name in ("scipy Radau", "scipy LSODA"):
                assert rows[name]["status"] in ("gtol", "ftol", "xtol", "ftol and xtol", "scipy: max_nfev"), (fam.name, rows[name])
                assert np.isfinite(rows[name]["loss"]), (fam.name, variant, name)
                assert [fam.name, variant, *name.split()] in [line[:4] for line in lines]
            library = rows[variant]
            assert library["status"] and library["message"], (fam.name, library)  # the library's own verdict, success or not
            assert np.isfinite(library["truth_loss"])
            assert [fam.name, variant, variant] in [line[:3] for line in lines]


HARD = {"exp-sum", "exp-sum3", "pulse", "growth", "forced", "late-obs"}
ALL = {"lv-post", "vdp", "lotka-volterra", "lorenz", "fitzhugh-nagumo", "sir", "brusselator", "michaelis-menten", "robertson-mild"}


def test_hard_group_is_left_out_of_all_and_selected_by_name(bench):
    fams = bench.make_families()
    groups = bench.family_groups(fams)
    assert set(groups["hard"]) == HARD and set(groups["all"]) == ALL
    assert not set(groups["stiff"]) & HARD
    assert {k for k, f in fams.items() if f.uses_t} == {"pulse", "forced"}
    for name in HARD:
        fam = fams[name]
        assert fam.model(fam.nominal).autonomous is (not fam.uses_t), name  # estimate then solves on the absolute time axis
        assert fam.start_kinds == (("30%", "2x", "100x") if name == "growth" else ("30%", "2x")), name
    assert all(f.start_kinds in (("30%", "2x"), ("post",)) for k, f in fams.items() if k not in HARD)  # the others: as before


def _closed_form(name, ts, p, y0):
    "The exact solution (time, state) of a hard family's system from y0 at ts[0]."
    tau = ts - ts[0]
    if name == "exp-sum":
        k1, k2 = p
        s0, y20 = y0
        return np.stack([(s0 - y20)*np.exp(-k1*tau) + y20*np.exp(-k2*tau), y20*np.exp(-k2*tau)], axis=-1)
    if name == "exp-sum3":
        k1, k2, k3 = p
        s0, y20, y30 = y0
        e1, e2, e3 = np.exp(-k1*tau), np.exp(-k2*tau), np.exp(-k3*tau)
        return np.stack([(s0 - y20 - y30)*e1 + y20*e2 + y30*e3, y20*e2, y30*e3], axis=-1)
    if name == "pulse":
        c, w = p
        return (y0[0]*np.exp(((ts[0] - c)**2 - (ts - c)**2)/(2*w*w)))[:, None]
    if name == "growth":
        r, K = p
        return (K/(1 + (K/y0[0] - 1)*np.exp(-r*tau)))[:, None]
    if name == "late-obs":
        k1, k2 = p
        A0, B0 = y0
        e1, e2 = np.exp(-k1*tau), np.exp(-k2*tau)
        return np.stack([A0*e1, B0*e2 + A0*k1/(k2 - k1)*(e1 - e2)], axis=-1)
    assert name == "forced"
    c, k, F = p
    om = 1.3
    den = (k - om*om)**2 + (c*om)**2
    A, B = F*(k - om*om)/den, F*c*om/den  # the steady response A cos(om t) + B sin(om t), in absolute time

    def xp(t): return A*np.cos(om*t) + B*np.sin(om*t)

    def vp(t): return om*(B*np.cos(om*t) - A*np.sin(om*t))
    beta = np.sqrt(k - c*c/4)
    C1 = y0[0] - xp(ts[0])
    C2 = (y0[1] - vp(ts[0]) + c/2*C1)/beta
    decay, cos, sin = np.exp(-c*tau/2), np.cos(beta*tau), np.sin(beta*tau)
    x = decay*(C1*cos + C2*sin) + xp(ts)
    v = decay*(-c/2*(C1*cos + C2*sin) + beta*(C2*cos - C1*sin)) + vp(ts)
    return np.stack([x, v], axis=-1)


@pytest.mark.parametrize("name", sorted(HARD))
def test_hard_systems_match_their_closed_forms_in_numpy_and_torch(bench, name):
    """scipy's path (the numpy rhs at the evaluator's tolerances) and the torch model integrated by the library's solver both follow
    the exact solution, from t = 0 on the family's grid and from t = 1.5 (absolute time for the non-autonomous systems)."""
    fam = bench.make_families()[name]
    assert bench.FORCED_OMEGA == 1.3
    problem = bench.make_problem(fam, 0)
    p, y0 = problem.truth, problem.y0[0]
    for ts in (fam.ts, np.linspace(1.5, fam.ts[-1], 40)):
        want = _closed_form(name, ts, p, y0)
        scale = np.abs(want).max()
        got = bench.solve(fam, p, y0[None], ts, bench.EVAL_RTOL, bench.EVAL_ATOL)[0]
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-8*scale, err_msg=f"{name} numpy from t={ts[0]}")
        with torch.no_grad():
            ys = integrate(fam.model(p), torch.from_numpy(y0)[None], torch.from_numpy(ts), method="dopri5", rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ys[0].numpy(), want, rtol=1e-7, atol=1e-8*scale, err_msg=f"{name} torch from t={ts[0]}")
    if fam.log:  # the model of the parameters' logarithms: the same equations
        u, t = torch.from_numpy(y0 + 0.1), torch.tensor(0.9, dtype=torch.float64)
        with torch.no_grad(): torch.testing.assert_close(fam.model(p, log=True)(t, u), fam.model(p)(t, u))


def test_late_observations_pose_the_known_state_before_the_data(bench):
    """fit's data: the known initial state at t0 = 0, then the noisy values from t = 2 on; estimate's: the same grid with the first
    row missing (NaN), which Observations accepts; scipy and the evaluator skip the missing row."""
    fam = bench.make_families()["late-obs"]
    problem = bench.make_problem(fam, 1)
    assert problem.ts[0] == 0 and problem.ts[1] == 2 and np.all(np.diff(problem.ts) > 0)
    fit_values = torch.stack(problem.fit_data.values).numpy()
    np.testing.assert_array_equal(fit_values[:, 0], problem.y0)
    assert np.all(np.isnan(problem.est_values[:, 0])) and np.all(np.isfinite(problem.est_values[:, 1:]))
    np.testing.assert_array_equal(problem.est_values[:, 1:], fit_values[:, 1:])  # the same measurements
    obs = Observations.from_arrays(torch.from_numpy(problem.ts), torch.from_numpy(problem.est_values))
    assert torch.isnan(obs.values[0][0]).all() and obs.t0().tolist() == [0.0]*fam.trajectories
    clean = bench.solve(fam, problem.truth, problem.y0, problem.ts, bench.EVAL_RTOL, bench.EVAL_ATOL)
    noise = (problem.est_values - clean)[:, 1:]
    assert bench.common_loss(problem, "estimate", problem.truth, problem.y0) == pytest.approx(np.mean(noise**2), rel=1e-6)
    out = bench.run_scipy(problem, "estimate", bench.start_point(problem, "30%"))
    assert out["success"] and np.isfinite(out["reported_loss"])
    assert bench.common_loss(problem, "estimate", out["params"], out["y0"]) <= np.mean(noise**2)


def test_hundredfold_start_is_off_by_a_factor_100(bench):
    fam = bench.make_families()["growth"]
    problem = bench.make_problem(fam, 0)
    start = bench.start_point(problem, "100x")
    np.testing.assert_allclose(np.abs(np.log10(start/problem.truth)), 2.0)
    assert problem.truth[1]/problem.truth[0] > 1e4  # K and r: five orders of magnitude apart


def test_hard_group_runs_every_method_and_records_the_library_verdict(bench, tmp_path, capsys):
    "The --quick path over the hard families (one dataset, the 30% start): every method's run is recorded and printed."
    out = tmp_path/"hard.json"
    assert bench.main(["--families", "hard", "--quick", "--json", str(out)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    records = json.loads(out.read_text())
    assert len(records) == len(HARD)*2*2
    for name in HARD:
        for variant in ("fit", "estimate"):
            rows = {r["method"]: r for r in records if r["family"] == name and r["variant"] == variant}
            assert set(rows) == {variant, "scipy"}, (name, variant)
            assert rows["scipy"]["status"] in ("gtol", "ftol", "xtol", "ftol and xtol", "scipy: max_nfev", "scipy: solver failed")
            assert rows[variant]["status"] and rows[variant]["message"], (name, rows[variant])
            assert np.isfinite(rows[variant]["truth_loss"])
            for method in (variant, "scipy"): assert [name, variant, method] in [line[:3] for line in lines], (name, variant, method)
