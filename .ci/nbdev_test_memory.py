"""`nbdev_test`, with the peak resident memory of every notebook measured and capped.

    python .ci/nbdev_test_memory.py [nbdev_test's arguments]

.ci/run runs the README's test command with `nbdev_test` standing for this script, so every notebook is tested exactly as
`nbdev_test` tests it (nbdev's own `nbdev_test`, its workers and its skip flags) and is measured too. Each notebook runs in one of
nbdev_test's worker processes; before a notebook starts, the worker's peak resident memory is reset (benchmarks/peak.py: Linux's
/proc/self/clear_refs, after malloc_trim), and after it ends the peak (VmHWM) is that notebook's. The table is printed at the end,
and the run fails (exit status 1) when a notebook's peak is above PFTD_MEMORY_CAP_GB (4 by default) or nbdev_test failed. Ray's
workers and other subprocesses a notebook starts are separate processes and are not counted.
"""
import functools
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

import nbdev.test

CAP_GB = float(os.environ.get("PFTD_MEMORY_CAP_GB", "4"))


_spec = importlib.util.spec_from_file_location("pftd_peak", Path(__file__).resolve().parents[1]/"benchmarks"/"peak.py")
peak = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))  # registered first: it holds dataclasses
_spec.loader.exec_module(peak)


def _shown(fn) -> str:
    "A notebook's path from the repository's root (where settings.ini is)."
    from nbdev.config import get_config
    try: return str(Path(fn).resolve().relative_to(get_config().config_path.resolve()))
    except ValueError: return str(fn)


def measured(test_nb, log: Path):
    "nbdev's test_nb, with the notebook's peak resident memory appended to `log` (one JSON line per notebook)."
    @functools.wraps(test_nb)
    def run(fn, *args, **kwargs):
        exact = peak.reset_peak()
        out = test_nb(fn, *args, **kwargs)
        with open(log, "a") as f:
            f.write(json.dumps(dict(notebook=_shown(fn), peak=peak.process_peak_bytes(), exact=exact)) + "\n")
        return out
    return run


def _nbdev_test() -> int:
    "nbdev's nbdev_test with this script's command-line arguments, parsed as the nbdev_test command parses them (fastcore's _run_cli)."
    from fastcore.script import _run_cli
    sys.argv[0] = "nbdev_test"
    _run_cli(nbdev.test.nbdev_test.__wrapped__, False)
    return 0


def main() -> int:
    if not peak.RESETS:
        print("nbdev_test_memory: peak memory per notebook needs Linux's /proc; running plain nbdev_test", file=sys.stderr)
        return _nbdev_test()
    with tempfile.TemporaryDirectory() as d:
        log = Path(d)/"peaks.jsonl"
        nbdev.test.test_nb = measured(nbdev.test.test_nb, log)  # the workers are forked after this: they run the measured one
        try: code = _nbdev_test()
        except SystemExit as e: code = e.code if isinstance(e.code, int) else 1  # nbdev_test exits 1 when a notebook fails
        rows = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    print(f"\npeak resident memory per notebook (cap {CAP_GB:g} GB)")
    for r in sorted(rows, key=lambda r: -r["peak"]):
        print(f"{r['peak']/1e9:7.2f} GB  {r['notebook']}{'' if r['exact'] else '  (process peak so far: could not reset)'}")
    over = [r["notebook"] for r in rows if r["peak"] > CAP_GB*1e9]
    if over:
        print(f"over the cap of {CAP_GB:g} GB: {', '.join(over)}")
        code = code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
