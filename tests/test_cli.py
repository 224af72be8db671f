import subprocess
import sys

import pytest
import torch

from paramfittorchdemo.cli import demo, demo_main


def test_demo_recovers_vdp_and_writes_plots(tmp_path, capsys):
    assert demo_main(["--out", str(tmp_path), "--epochs", "50", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "mu" in out and "0.3000" in out
    r = demo("vdp", epochs=50, out=tmp_path, show_every=None)
    assert r["params"]["mu"]["rel_error"] < 0.02
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vdp_loss.png", "vdp_phase_plane.png", "vdp_time_series.png"]


def test_demo_other_problems(tmp_path):
    r = demo("lotka-volterra", epochs=2, out=tmp_path, show_every=None)
    assert set(r["params"]) == {"alpha", "beta", "delta", "gamma"}
    r = demo("lorenz", epochs=1, out=tmp_path, show_every=None)
    assert set(r["params"]) == {"sigma", "rho", "beta"}


def test_demo_bad_input(capsys, tmp_path):
    assert demo_main(["--epochs", "0", "--quiet"]) == 2
    assert "epochs as a positive integer" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("not a folder\n")
    assert demo_main(["--out", str(tmp_path / "a-file"), "--quiet"]) == 2
    assert (capsys.readouterr().err
            == "paramfittorchdemo-demo: error: demo: out '" + str(tmp_path / "a-file") + "' exists and is not a folder.\n")
    assert demo_main(["--seed", str(2**70), "--epochs", "1", "--quiet", "--out", str(tmp_path)]) == 2
    assert "seed between -2**63 and 2**64 - 1" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert demo_main(["--device", "cuda", "--quiet"]) == 2
        assert "CUDA is not available here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo_main(["--device", "tpu"])
    with pytest.raises(SystemExit):
        demo_main(["--problem", "pendulum"])
    with pytest.raises(ValueError, match="unknown demo problem"):
        demo("pendulum")


def test_console_script_is_installed(tmp_path):
    r = subprocess.run([sys.executable, "-c", "from importlib.metadata import entry_points; "
                        "print([e.value for e in entry_points(group='console_scripts') if e.name == 'paramfittorchdemo-demo'])"],
                       capture_output=True, text=True)
    assert "paramfittorchdemo.cli:demo_main" in r.stdout



# ---- paramfittorchdemo-fit ----------------------------------------------------------------------------------------
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramfittorchdemo
import re
from paramfittorchdemo.cli import fit_main

LYNX_HARE = Path(paramfittorchdemo.__file__).parent / "datasets" / "hudson_bay_lynx_hare.csv"
LV_START = ["--param", "alpha=0.5", "--param", "beta=0.02", "--param", "delta=1.0", "--param", "gamma=0.02"]
ADAM = ["--model", "vdp", "--optimizer", "adam", "--lr", "0.02", "--num-samples", "6", "--checkpoint-every", "2"]
USER_MODEL = '''
import torch
from torch import nn

class Decay(nn.Module):
    "dy/dt = -k y"
    dim = 1
    autonomous = True
    def __init__(self, k=0.5):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(float(k)))
    def forward(self, t, y):
        return -self.k*y

class Squared(nn.Module):
    "dy/dt = k y^2, whose solution blows up in finite time"
    dim = 1
    def __init__(self, k=1.0):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(float(k)))
    def forward(self, t, y):
        return self.k*y*y
'''
USER_MODELS = '''
import torch
from torch import nn

class Broken(nn.Module):
    "raises while it is built"
    dim = 1
    def __init__(self, k=0.5):
        super().__init__()
        raise RuntimeError("cannot build " + str(k))

class Raises(nn.Module):
    "raises whenever it is called"
    dim = 1
    def __init__(self):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(0.5))
    def forward(self, t, y):
        raise KeyError("no rate for this state")

class Wide(nn.Module):
    "returns two derivatives for one state"
    dim = 1
    def __init__(self):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(0.5))
    def forward(self, t, y):
        return torch.cat([y, y], -1)

class Flaky(nn.Module):
    "dy/dt = -k y for the first 40 calls, then an error: it fails in the middle of the fit"
    dim = 1
    def __init__(self, k=0.5):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(float(k)))
        self.calls = 0
    def forward(self, t, y):
        self.calls += 1
        if self.calls > 40: raise ZeroDivisionError("flaky after 40 calls")
        return -self.k*y
'''
DECAY_CSV = "time,x\n0,2\n1,1.2\n2,0.7\n3,0.45\n"

# Every kind of bad input, through the console script: name -> (arguments, exit status, part of the one-line message)
BAD = {
    "unknown model": (["--model", "pendulum"], 2, "unknown model 'pendulum'; use vdp, lotka-volterra, lorenz, or module:Class"),
    "module does not import": (["--model", "no_such_module_xyz:Model"], 2,
                               "--model no_such_module_xyz:Model: cannot import 'no_such_module_xyz'"),
    "missing csv": (["--data", "missing.csv"], 2, "--data missing.csv: no such file"),
    "malformed csv": (["--data", "bad.csv"], 2, "'bad.csv', line 3, column 'x': non-numeric value 'abc'"),
    "unknown parameter": (["--param", "nu=0.2"], 2, "--param: unknown parameter nu; VDP has mu"),
    "bad number": (["--param", "mu=abc"], 2, "--param mu=abc: 'abc' is not a finite number"),
    "cuda unavailable": (["--device", "cuda"], 2, "--device cuda: CUDA is not available here"),
    "resume without checkpoint": (["--optimizer", "adam", "--resume"], 2, "--resume: no checkpoint at"),
    "resume with another optimizer": (["--resume"], 2, "--resume applies only with --optimizer adam"),
    "diverging fit": (["--model", "lotka-volterra", "--param", "beta=-1"], 1,
                      "the fit of lotka-volterra failed: the starting values alpha=1.6, beta=-1, delta=2.7, gamma=1.2 give no solution"),
    "model raises when built": (["--model", "usermodels:Broken", "--init", "k=2"], 2,
                                "--model usermodels:Broken: Broken(k=2) failed with RuntimeError: cannot build 2"),
    "model fails during the fit": (["--model", "usermodels:Flaky", "--data", "decay.csv"], 1,
                                   "the fit of usermodels:Flaky failed: Flaky raised ZeroDivisionError: flaky after 40 calls"),
    "latin-1 csv": (["--model", "decay:Decay", "--data", "latin1.csv"], 2,
                    "'latin1.csv', line 1: byte 0xe9"),
}


def _fit_script() -> list:
    "The installed console script (next to this Python first, else on PATH), or its entry point run by this Python."
    here = Path(sys.executable).with_name("paramfittorchdemo-fit")
    found = str(here) if here.exists() else shutil.which("paramfittorchdemo-fit")
    return [found] if found else [sys.executable, "-c", "import sys; from paramfittorchdemo.cli import fit_main; sys.exit(fit_main())"]


def _env() -> dict:
    "The environment of a subprocess: one thread (several run at once), and the paramfittorchdemo these tests import."
    here = str(Path(paramfittorchdemo.__file__).resolve().parents[1])  # a checkout or worktree on PYTHONPATH wins over the installed one
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def run_fit(*args, cwd=None) -> subprocess.CompletedProcess:
    "Run `paramfittorchdemo-fit args` in a subprocess, as a user would."
    return subprocess.run(_fit_script() + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=_env(), timeout=300)


def test_subprocesses_run_the_code_under_test(tmp_path):
    r = subprocess.run([sys.executable, "-c", "import paramfittorchdemo.cli as c; print(c.__file__)"],
                       capture_output=True, text=True, cwd=tmp_path, env=_env())
    import paramfittorchdemo.cli as here
    assert Path(r.stdout.strip()).resolve() == Path(here.__file__).resolve(), r.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every console-script run the tests below check, started together (each mostly waits for torch to import):
    name -> its folder and results."""
    root = tmp_path_factory.mktemp("fit")
    (root / "decay.py").write_text(USER_MODEL)
    (root / "bad.csv").write_text("time,x,y\n0,1,2\n1,abc,3\n")
    (root / "usermodels.py").write_text(USER_MODELS)
    (root / "decay.csv").write_text(DECAY_CSV)
    (root / "latin1.csv").write_bytes("time,x,caf\xe9\n0,1,2\n".encode("latin-1"))
    jobs = {  # name -> argument lists run one after the other in `root`
        "vdp": [["--model", "vdp", "--out", "vdp"]],
        "lynx-hare": [["--model", "lotka-volterra", "--data", LYNX_HARE, "--time-col", "year", *LV_START, "--positive",
                       "--loss", "log", "--out", "lh"]],
        "user model": [["--model", "decay:Decay", "--init", "k=0.8", "--param", "k=0.3", "--y0", "2.0", "--out", "user"]],
        "adam, then resumed": [[*ADAM, "--epochs", "3", "--out", "adam"], [*ADAM, "--epochs", "6", "--resume", "--out", "adam"]],
        "adam, uninterrupted": [[*ADAM, "--epochs", "6", "--out", "adam-whole"]],
        "debug": [["--param", "nu=0.2", "--debug", "--out", "debug"]],
        **{name: [[*args, "--out", f"bad-{i}"]] for i, (name, (args, _, _)) in enumerate(BAD.items())},
    }
    def run_all(cmds):  # each step also records the files it left, since the next step may change them
        out = []
        for args in cmds:
            r = run_fit(*args, cwd=root)
            folder = root / args[args.index("--out") + 1]
            params = json.loads((folder / "params.json").read_text()) if (folder / "params.json").is_file() else None
            out.append((r, params))
        return out
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 1) as pool:
        futures = {name: pool.submit(run_all, cmds) for name, cmds in jobs.items()}
        return root, {name: f.result() for name, f in futures.items()}


def _ok(run):
    r, params = run
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return r, params


def test_fit_console_script_is_installed():
    r = subprocess.run([sys.executable, "-c", "from importlib.metadata import entry_points; "
                        "print([e.value for e in entry_points(group='console_scripts') if e.name == 'paramfittorchdemo-fit'])"],
                       capture_output=True, text=True)
    assert "paramfittorchdemo.cli:fit_main" in r.stdout


def test_fit_simulated_vdp_with_lm(runs):
    root, results = runs
    r, p = _ok(results["vdp"][0])
    assert "mu = 0.29" in r.stdout and "(true 0.3)" in r.stdout
    out = root / "vdp"
    assert sorted(x.name for x in out.iterdir()) == ["fit.png", "history.csv", "loss.png", "params.json"]
    assert p["backend"] == "fit" and p["optimizer"] == "lm" and p["converged"]
    assert abs(p["params"]["mu"] - 0.3) < 0.01 and abs(p["true_params"]["mu"] - 0.3) < 1e-6
    assert p["version"] == paramfittorchdemo.__version__ and p["options"]["model"] == "vdp" and p["options"]["seed"] == 0
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0] == "iteration,loss" and len(lines) > 2 and lines[1].startswith("0,")  # fit's losses, from the start
    assert float(lines[-1].split(",")[1]) == pytest.approx(p["loss"])


def test_fit_lynx_hare_csv_gives_standard_errors(runs):
    root, results = runs
    r, p = _ok(results["lynx-hare"][0])
    assert p["backend"] == "estimate" and p["converged"] and "true_params" not in p
    published = dict(alpha=0.55, beta=0.028, delta=0.80, gamma=0.024)  # Carpenter's Bayesian fit, as in the lynx-hare tutorial
    for k, v in published.items():
        lo, hi = p["ci95"][k]
        assert lo < v < hi and 0 < p["stderr"][k] < 0.2*p["params"][k]
        assert abs(p["params"][k] - v) < 0.1*v
    out = root / "lh"
    assert sorted(x.name for x in out.iterdir()) == ["fit.png", "history.csv", "loss.png", "params.json", "report.txt"]
    assert "[[Variables]]" in (out / "report.txt").read_text()
    assert (out / "history.csv").read_text().splitlines()[0] == "iteration,loss,alpha,beta,delta,gamma"
    assert "+/-" in r.stdout and "95% CI" in r.stdout


def test_fit_user_model_from_the_current_folder(runs):
    root, results = runs
    _, p = _ok(results["user model"][0])
    assert p["true_params"] == {"k": pytest.approx(0.8)} and abs(p["params"]["k"] - 0.8) < 0.01
    assert (root / "user" / "fit.png").stat().st_size > 0


def test_fit_adam_resume_matches_an_uninterrupted_run(runs):
    root, results = runs
    (first, p3), (resumed, p6) = (_ok(x) for x in results["adam, then resumed"])
    _, whole = _ok(results["adam, uninterrupted"][0])
    assert p3["backend"] == "train" and p3["epochs"] == 3 and (root / "adam" / "checkpoint.pt").is_file()
    assert p6["epochs"] == whole["epochs"] == 6
    assert p6["params"] == pytest.approx(whole["params"], rel=1e-6, abs=1e-9)
    assert p6["params"]["mu"] != p3["params"]["mu"]  # the resumed run went on from the first one
    history = (root / "adam" / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,mu" and len(history) == 1 + 6


@pytest.mark.parametrize("name", list(BAD))
def test_fit_bad_input_gives_one_line(runs, name):
    if name == "cuda unavailable" and torch.cuda.is_available(): pytest.skip("CUDA is available here")
    root, results = runs
    (r, _), (_, status, message) = results[name][0], BAD[name]
    assert r.returncode == status, (r.returncode, r.stderr)
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("paramfittorchdemo-fit: error: ") and message in r.stderr, r.stderr
    assert r.stdout == ""
    out = root / f"bad-{list(BAD).index(name)}"
    if status == 2:  # bad input is found before anything is written
        assert not out.exists()
    else:  # a failed fit leaves only status.json, which cannot be taken for a result
        assert [p.name for p in out.iterdir()] == ["status.json"]
        st = json.loads((out / "status.json").read_text())
        assert st["status"] == "failed" and st["success"] is False and message in st["message"] and st["note"] == "no results were written"


def test_fit_debug_shows_the_traceback(runs):
    r, _ = runs[1]["debug"][0]
    assert r.returncode != 0 and "Traceback" in r.stderr and "unknown parameter nu" in r.stderr


# More variants in-process, which is much faster than a subprocess per case.
@pytest.mark.parametrize("args, status, message", [
    (["--model", "decay:Nope"], 2, "module 'decay' has no 'Nope'"),
    (["--model", "broken:Model"], 2, "importing 'broken' failed with SyntaxError"),
    (["--model", "needs:Model"], 2, "importing 'needs' failed with ModuleNotFoundError: No module named 'no_such_dependency_xyz'"),
    (["--model", "decay:torch"], 2, "torch is a module, not a torch.nn.Module subclass"),
    (["--model", "decay:Decay", "--init", "rate=2"], 2, "--model decay:Decay: Decay(rate=2) failed"),
    (["--model", "decay:Decay", "--simulate", "--y0", "1,2"], 2, "--y0 gives 2 values, but Decay has 1 states"),
    (["--fix", "nu"], 2, "--fix: unknown parameter nu; VDP has mu"),
    (["--fix", "mu"], 2, "estimate: every parameter is fixed"),
    (["--param", "mu=0"], 2, "--param: VDP(mu=0) failed: VDP needs a nonzero mu"),
    (["--param", "mu"], 2, "--param needs name=value, got 'mu'"),
    (["--init", "mu=0.5", "--init", "mu=0.6"], 2, "--init sets 'mu' twice"),
    (["--optimizer", "adam", "--lr", "-1"], 2, "argument --lr: expected a positive number, got '-1'"),
    (["--optimizer", "sgd"], 2, "argument --optimizer: invalid choice: 'sgd'"),
    (["--optimizer", "adam", "--epochs", "2.5"], 2, "argument --epochs: expected an integer >= 1, got '2.5'"),
    (["--n-times", "1"], 2, "argument --n-times: expected an integer >= 2, got '1'"),
    (["--noise", "nan"], 2, "argument --noise: expected a number >= 0, got 'nan'"),
    (["--seed", "x"], 2, "argument --seed: expected an integer >= 0 and <= 9223372036854775807, got 'x'"),
    (["--seed", "99999999999999999999999"], 2, "argument --seed: expected an integer >= 0"),
    (["--method", "euler2"], 2, "unknown solver method 'euler2'"),
    (["--epochs", "5"], 2, "--epochs applies only with --optimizer adam or adam-lbfgs"),
    (["--noise", "0.1", "--data", "bad.csv"], 2, "--noise applies only with simulated data"),
    (["--simulate", "--data", "bad.csv"], 2, "use either --data FILE.csv or --simulate, not both"),
    (["--positive", "--optimizer", "lbfgs"], 2, "--positive applies only with --optimizer lm"),
    (["--data", "ragged.csv", "--columns", "x"], 2, "VDP has 2 states, but ragged.csv gives 1 column ['x']"),
    (["--data", "ragged.csv", "--optimizer", "lbfgs"], 2, "--optimizer lbfgs needs every trajectory on one time grid"),
    (["--data", str(LYNX_HARE)], 2, "no column 'time' (from time_col)"),
    (["--model", "lotka-volterra", "--data", str(LYNX_HARE), "--time-col", "year", "--positive", "--param", "beta=-1"], 2,
     "the starting value of beta, -1, is not strictly inside its bounds"),
    (["--model", "lotka-volterra", "--optimizer", "lbfgs", "--param", "beta=-1"], 1,
     "the fit of lotka-volterra failed: the starting values alpha=1.6, beta=-1, delta=2.7, gamma=1.2 give no solution of LotkaVolterra"),
    (["--model", "decay.py:Decay"], 2, "expected a module name, got the file name 'decay.py'; drop the .py: --model decay:Decay"),
    (["--model", "decay:Decay", "--init", "k=nan"], 2, "--init k=nan: 'nan' is not a finite number"),
    (["--model", "decay:Decay", "--init", "k=[1, 1e999]"], 2, "--init k=[1, 1e999]: '[1, 1e999]' is not a finite number"),
    (["--param", "mu=inf"], 2, "--param mu=inf: 'inf' is not a finite number"),
    (["--data", "."], 2, "--data .: is a folder, not a CSV file"),
    (["--data", "semi.csv"], 2, "On the command line: --delimiter ';'"),
    (["--data", "semi.csv", "--delimiter", ";;"], 2, "argument --delimiter: expected one character such as ';' or tab, got ';;'"),
    (["--encoding", "latin-1"], 2, "--encoding applies only with --data"),
    (["--data", "bad.csv", "--encoding", "klingon"], 2, "unknown encoding 'klingon'"),
    (["--data", "bad.csv", "--format", "wide", "--id-col", "x"], 2, "--id-col applies only with --format long"),
    (["--out", ""], 2, "--out needs a folder name"),
    (["--out", "bad.csv"], 2, "--out bad.csv: exists and is not a folder"),
    (["--model", "decay:Decay", "--init", "k=1e999"], 2, "--init k=1e999: '1e999' is not a finite number"),
    (["--out", "bad.csv/sub"], 2, "bad.csv is a file, so no folder can be made below it"),
    (["--model", "decay:Squared", "--y0", "1", "--t-end", "2"], 2,
     "create_sim_dataset: simulating Squared() from t=0 to 2 failed: simulate of Squared: dopri5 stopped"),
])
def test_fit_main_bad_input(tmp_path, monkeypatch, capsys, args, status, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # fit_main puts the current folder on sys.path
    for name in ("broken", "decay", "needs"): monkeypatch.delitem(sys.modules, name, raising=False)
    (tmp_path / "broken.py").write_text("def f(:\n")
    (tmp_path / "needs.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "decay.py").write_text(USER_MODEL)
    (tmp_path / "bad.csv").write_text("time,x,y\n0,1,2\n1,abc,3\n")
    (tmp_path / "ragged.csv").write_text("id,time,x,y\na,0,1,2\na,1,1,2\nb,0,1,2\nb,2,1,2\n")
    (tmp_path / "semi.csv").write_text("time;x;y\n0;1;2\n")
    args = [*args, "--out", "out"] if "--out" not in args else args
    assert fit_main(args) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("paramfittorchdemo-fit: error: ") and message in err, err
    if status == 2: assert not (tmp_path / "out").exists()
    else: assert [p.name for p in (tmp_path / "out").iterdir()] == ["status.json"]


def test_fit_main_other_optimizers_and_help(tmp_path, capsys):
    for opt in ("lbfgs", "adam-lbfgs"):
        extra = ["--epochs", "20"] if opt == "adam-lbfgs" else []
        assert fit_main(["--optimizer", opt, *extra, "--out", tmp_path / opt]) == 0
        p = json.loads((tmp_path / opt / "params.json").read_text())
        assert p["backend"] == "fit" and p["optimizer"] == opt and abs(p["params"]["mu"] - 0.3) < 0.01
    # fixing a parameter on simulated data switches lm to estimate; a fixed parameter keeps its starting value
    assert fit_main(["--model", "lotka-volterra", "--fix", "beta", "--param", "beta=1.0", "--out", tmp_path / "fix"]) == 0
    p = json.loads((tmp_path / "fix" / "params.json").read_text())
    assert p["backend"] == "estimate" and p["params"]["beta"] == 1.0 and "beta" not in p["stderr"]
    assert abs(p["params"]["alpha"] - 1.5) < 0.05
    capsys.readouterr()
    assert fit_main(["--help"]) == 0
    assert "--optimizer {lm,lbfgs,adam-lbfgs,adam}" in capsys.readouterr().out


def test_fit_main_resume_refuses_a_different_run(tmp_path, capsys):
    assert fit_main(["--optimizer", "adam", "--epochs", "2", "--out", tmp_path]) == 0
    capsys.readouterr()
    assert fit_main(["--optimizer", "adam", "--epochs", "4", "--lr", "0.05", "--resume", "--out", tmp_path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was written with lr=0.01" in err and "lr=0.05" in err, err
    assert fit_main(["--optimizer", "adam", "--epochs", "1", "--resume", "--out", tmp_path]) == 2
    assert "has already run 2 epochs" in capsys.readouterr().err


# ---- results are complete or absent: never partial, never misleading ----------------------------------------------
import paramfittorchdemo.cli as cli

FAST = ["--model", "vdp", "--optimizer", "lbfgs", "--max-iter", "5"]  # a quick fit, whatever it reaches
FAILS = ["--model", "lotka-volterra", "--optimizer", "lbfgs", "--param", "beta=-1"]  # ends with an infinite loss


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _no_staging_left(folder: Path):
    assert not [p.name for p in folder.parent.iterdir() if ".partial-" in p.name]


def test_params_json_says_success_status_and_message(tmp_path, capsys):
    assert fit_main([*FAST, "--out", tmp_path / "a"]) == 0
    p = json.loads((tmp_path / "a" / "params.json").read_text())
    assert list(p)[:2] == ["status", "success"]
    assert p["success"] is p["converged"] and p["status"] in ("converged", "not converged") and p["message"]
    assert "not converged" in capsys.readouterr().out or p["converged"]


def test_result_fields_come_from_the_result_when_it_has_them():
    from types import SimpleNamespace
    assert cli._outcome(SimpleNamespace(), True) == dict(success=True, status="converged", converged=True)
    assert cli._outcome(SimpleNamespace(), False) == dict(success=False, status="not converged", converged=False)
    assert cli._outcome(SimpleNamespace(), None, "early stop") == dict(success=True, status="early stop", converged=None)
    newer = SimpleNamespace(success=False, status="max_iter")
    assert cli._outcome(newer, True) == dict(success=False, status="max_iter", converged=True)


def test_failed_fit_keeps_the_earlier_result_and_says_so(tmp_path, capsys):
    out = tmp_path / "out"
    assert fit_main([*FAST, "--out", out]) == 0
    before = _files(out)
    assert fit_main([*FAILS, "--out", out]) == 1
    assert "the fit of lotka-volterra failed" in capsys.readouterr().err
    after = _files(out)
    assert {k: v for k, v in after.items() if k != "status.json"} == before  # not a byte of the earlier result changed
    st = json.loads(after["status.json"])
    assert st["status"] == "failed" and st["success"] is False and st["error"] == "DivergenceError"
    assert "params.json" in st["note"] and "earlier run" in st["note"] and st["options"]["param"] == ["beta=-1"]
    _no_staging_left(out)
    # the next good run replaces everything, and no file of the earlier runs is left: report.txt, status.json
    assert fit_main(["--model", "vdp", "--fix", "mu", "--param", "mu=0.3", "--out", out]) == 2  # bad input: nothing changes
    assert _files(out) == after
    assert fit_main(["--model", "lotka-volterra", "--positive", "--max-iter", "3", "--out", out]) == 0
    assert sorted(_files(out)) == ["fit.png", "history.csv", "loss.png", "params.json", "report.txt"]
    assert fit_main([*FAST, "--out", out]) == 0
    assert sorted(_files(out)) == ["fit.png", "history.csv", "loss.png", "params.json"]
    assert json.loads((out / "params.json").read_text())["model"] == "vdp"
    _no_staging_left(out)


def test_failure_while_writing_leaves_no_partial_result(tmp_path, monkeypatch, capsys):
    def no_figure(*args, **kw): raise AssertionError("underflow in dt 0.0")
    monkeypatch.setattr(cli, "_fit_figure", no_figure)
    assert fit_main([*FAST, "--out", tmp_path / "new"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "the fit of vdp ran, but writing its results failed, so none were kept: the ODE solver failed" in err, err
    assert sorted(_files(tmp_path / "new")) == ["status.json"]  # params.json was written first before: now it is not there at all
    _no_staging_left(tmp_path / "new")
    monkeypatch.undo()
    assert fit_main([*FAST, "--out", tmp_path / "old"]) == 0
    before = _files(tmp_path / "old")
    monkeypatch.setattr(cli, "_fit_figure", no_figure)
    assert fit_main(["--model", "vdp", "--optimizer", "lbfgs", "--max-iter", "7", "--out", tmp_path / "old"]) == 1
    after = _files(tmp_path / "old")
    assert {k: v for k, v in after.items() if k != "status.json"} == before
    _no_staging_left(tmp_path / "old")


def test_interrupted_fit(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kw): raise KeyboardInterrupt
    monkeypatch.setattr(cli, "_by_fit", interrupted)
    assert fit_main([*FAST, "--out", tmp_path]) == 130
    assert capsys.readouterr().err == "paramfittorchdemo-fit: interrupted\n"
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "interrupted"


def test_user_model_errors_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "usermodels", raising=False)
    (tmp_path / "usermodels.py").write_text(USER_MODELS)
    (tmp_path / "decay.csv").write_text(DECAY_CSV)
    cases = [
        (["--model", "usermodels:Broken", "--y0", "1"], 2,
         "--model usermodels:Broken: Broken() failed with RuntimeError: cannot build 0.5"),
        (["--model", "usermodels:Wide", "--data", "decay.csv"], 2,
         "--model usermodels:Wide: Wide.forward(t, y) returned shape (1, 2) for y of shape (1, 1)"),
        (["--model", "usermodels:Raises", "--y0", "1"], 2, "create_sim_dataset: calling the model Raises() as model(t, y)"),
        (["--model", "usermodels:Raises", "--data", "decay.csv"], 2,
         "--model usermodels:Raises: Raises.forward(t, y) raised KeyError: 'no rate for this state'"),
        (["--model", "usermodels:Flaky", "--data", "decay.csv", "--optimizer", "lbfgs"], 1,
         "the fit of usermodels:Flaky failed: Flaky raised ZeroDivisionError: flaky after 40 calls"),
    ]
    for i, (args, status, message) in enumerate(cases):
        assert fit_main([*args, "--out", f"out{i}"]) == status, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert (tmp_path / f"out{i}").exists() == (status == 1)


def test_debug_keeps_the_exit_status_and_the_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "usermodels", raising=False)
    (tmp_path / "usermodels.py").write_text(USER_MODELS)
    assert fit_main(["--model", "usermodels:Broken", "--y0", "1", "--debug", "--out", "out"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and 'raise RuntimeError("cannot build " + str(k))' in err
    assert err.splitlines()[-1] == ("paramfittorchdemo-fit: error: --model usermodels:Broken: "
                                    "Broken() failed with RuntimeError: cannot build 0.5")


def test_csv_options_reach_the_reader(tmp_path, capsys):
    import gzip
    (tmp_path / "latin.csv").write_bytes("# mesuré\ntime;x\n0;2\n1;1.2\n2;0.7\n3;0.45\n".encode("latin-1"))
    assert fit_main(["--model", "vdp", "--data", tmp_path / "latin.csv", "--out", tmp_path / "o"]) == 2
    assert ('pass encoding="latin-1" (or "cp1252"), or save the file as UTF-8. On the command line: --encoding latin-1.'
            in capsys.readouterr().err)
    assert fit_main(["--model", "vdp", "--data", tmp_path / "latin.csv", "--encoding", "latin-1", "--out", tmp_path / "o"]) == 2
    assert "On the command line: --delimiter ';'." in capsys.readouterr().err
    assert fit_main(["--model", "vdp", "--data", tmp_path / "latin.csv", "--encoding", "latin-1", "--delimiter", ";",
                     "--out", tmp_path / "o"]) == 2
    assert "VDP has 2 states, but" in capsys.readouterr().err  # read: the file has one column
    (tmp_path / "tabs.csv.gz").write_bytes(gzip.compress(b"time\tx\n0\t1\n"))
    assert fit_main(["--model", "vdp", "--data", tmp_path / "tabs.csv.gz", "--out", tmp_path / "o"]) == 2
    assert "On the command line: --delimiter tab." in capsys.readouterr().err
    assert cli._delimiter("tab") == cli._delimiter("\\t") == "\t"


def test_param_is_a_starting_value_and_params_json_holds_the_result(tmp_path):
    assert fit_main(["--model", "lotka-volterra", "--param", "beta=0.8", "--out", tmp_path / "start"]) == 0
    p = json.loads((tmp_path / "start" / "params.json").read_text())
    assert p["backend"] == "fit" and abs(p["params"]["beta"] - 1.0) < 0.05 and p["params"]["beta"] != 0.8  # fitted from 0.8
    assert 0 < p["stderr"]["beta"] < 0.05 and p["ci95"]["beta"][0] < p["params"]["beta"] < p["ci95"]["beta"][1]
    assert p["result"]["x"] == list(p["params"].values()) and p["result"]["nfev"] > 0


# --data lynx-hare, and remedies that are options of this command
def _only_options_of_this_command(text: str):
    "Every option the text suggests exists, and no argument of the Python API (max_steps=, shooting=, ...) is suggested instead."
    known = {o for a in cli._fit_parser()._actions for o in a.option_strings}
    assert set(re.findall(r"--[a-z][a-z0-9-]*", text)) <= known, sorted(set(re.findall(r"--[a-z][a-z0-9-]*", text)) - known)
    python_only = re.findall(r"(?<![\w-])(?:(?:max_steps|max_iter|step_size|rtol|atol|lr)\b|(?:shooting|horizons|starts)=)", text)
    assert not python_only, (python_only, text)


def test_the_shipped_dataset_by_name(tmp_path, capsys):
    assert fit_main(["--model", "lotka-volterra", "--data", "lynx-hare", *LV_START, "--positive", "--loss", "log", "--out", tmp_path]) == 0
    p = json.loads((tmp_path / "params.json").read_text())
    assert p["converged"] and p["data"].startswith("lynx-hare (1 trajectory, 21 time points)")
    assert p["ci95"]["alpha"][0] < 0.55 < p["ci95"]["alpha"][1]  # as from the CSV file itself
    assert "y0[hudson_bay, hare]" in (tmp_path / "report.txt").read_text()
    capsys.readouterr()
    assert fit_main(["--model", "lotka-volterra", "--data", "lynx-hare", "--time-col", "year", "--out", tmp_path / "x"]) == 2
    assert "--time-col applies only with a CSV file of your own (--data FILE.csv)" in capsys.readouterr().err


def test_help_and_readme_say_where_the_shipped_csv_is(capsys):
    assert fit_main(["--help"]) == 0
    raw = capsys.readouterr().out
    text = " ".join(raw.split())
    path = cli._example_csv()
    assert path.is_file() and path.resolve() == LYNX_HARE.resolve()
    assert "or lynx-hare, the Hudson's Bay lynx and hare pelts" in text
    assert "".join(str(path).split()) in "".join(raw.split())  # argparse may break the path across lines
    assert "--data lynx-hare --param alpha=0.5" in text  # the example, with a start that works
    _only_options_of_this_command(text)
    readme = (Path(cli.__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert "--data lynx-hare" in readme and "paramfittorchdemo/datasets/hudson_bay_lynx_hare.csv" in readme
    assert "load_lynx_hare().to_csv(" in readme  # how to get a copy to start from


def test_a_start_without_a_solution_is_named_as_the_problem(tmp_path, capsys):
    "The start, not the solver's budget: the message points at --param, and at nothing the command lacks."
    assert fit_main(["--model", "lotka-volterra", "--data", "lynx-hare", "--param", "beta=-1", "--out", tmp_path]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "the starting values alpha=1.6, beta=-1, delta=2.7, gamma=1.2 give no solution of LotkaVolterra" in err
    assert "--param NAME=VALUE" in err and "--param alpha=0.5 --param beta=0.02" in err  # a start on the scale of these data
    assert "stiff" not in err and "--max-steps" not in err  # the budget was not the problem
    _only_options_of_this_command(err)
    assert fit_main(["--model", "lotka-volterra", "--optimizer", "lbfgs", "--param", "beta=-1", "--out", tmp_path / "b"]) == 1
    err = capsys.readouterr().err
    assert "give no solution" in err and "--param NAME=VALUE" in err
    _only_options_of_this_command(err)


def test_every_remedy_the_messages_suggest_is_an_option(tmp_path, capsys):
    from types import SimpleNamespace
    from paramfittorchdemo.lm import failure_advice
    from paramfittorchdemo.training import _train_advice
    advice = [failure_advice(f) for f in ("dopri5: the problem looks stiff", "beyond its budget of 20000", "not finite")]
    advice += [_train_advice(SimpleNamespace(stiff=s, kind=k), m) for s, k, m in ((True, "", "dopri5"), (False, "steps", "dopri5"),
                                                                                  (False, "", "rk4"), (False, "", "dopri5"))]
    advice += ["reached max_iter=30 before converging; a poor start or a local minimum: try shooting=, horizons= or starts=",
               "no step lowered the loss (try a tighter rtol)", "try a smaller lr", "try step_size=0.1", "raise max_steps= if needed"]
    for text in advice:
        said = cli._on_the_command_line(text)
        _only_options_of_this_command(said)
        assert said != text
    # a fit that stops early: the summary and the warning speak of options of the command
    assert fit_main(["--model", "lotka-volterra", "--data", "lynx-hare", "--max-iter", "1", "--out", tmp_path]) == 0
    out, err = capsys.readouterr()
    assert "not converged (budget exhausted: " in out and "--max-iter 1" in out  # accepted steps, or 3x in trial solves
    assert err.startswith("paramfittorchdemo-fit: warning: estimate of LotkaVolterra ended where it started")
    _only_options_of_this_command(out + err)
    assert fit_main(["--model", "vdp", "--max-steps", "3", "--out", tmp_path / "steps"]) == 1  # the budget reaches the solver
    err = capsys.readouterr().err
    assert "budget of 3" in err and "or raise --max-steps, now 3" in err  # a budget that was set, and was too small
    _only_options_of_this_command(err)
