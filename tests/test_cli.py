import subprocess
import sys

import pytest

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


def test_demo_bad_input(capsys):
    assert demo_main(["--epochs", "0", "--quiet"]) == 2
    assert "epochs as a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo_main(["--problem", "pendulum"])
    with pytest.raises(ValueError, match="unknown demo problem"):
        demo("pendulum")


def test_console_script_is_installed(tmp_path):
    r = subprocess.run([sys.executable, "-c", "from importlib.metadata import entry_points; "
                        "print([e.value for e in entry_points(group='console_scripts') if e.name == 'paramfittorchdemo-demo'])"],
                       capture_output=True, text=True)
    assert "paramfittorchdemo.cli:demo_main" in r.stdout
