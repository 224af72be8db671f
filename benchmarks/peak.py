"""Peak memory of what a benchmark measures: the resident-memory peak while a block ran, and torch's CUDA peak where it runs on CUDA.

    from peak import measure, peak_memory, NOTE
    with peak_memory() as mem:          # resets the process's peak on entry
        run_the_row()
    mem.peak_mb, mem.rise_mb            # the peak while the block ran; that peak minus the resident memory when it began
    result, mem = measure(fn, *args)    # the same around one call

On Linux the kernel's high-water mark of the resident set (VmHWM in /proc/self/status) is reset by writing 5 to
/proc/self/clear_refs, so the peak is the block's own, with torch's and numpy's allocations (which tracemalloc misses).
Before the reset, glibc's malloc_trim hands the heap's free pages back to the kernel, so that memory freed by earlier work
does not sit in the resident set and hide the block's own growth (the rise).
Where that is impossible (macOS, no /proc) the peak is getrusage's ru_maxrss, the process's peak so far, and the rise is
not known; NOTE says which one a run measured. `peak_memory(cuda=True)` also records torch.cuda.max_memory_allocated
after torch.cuda.reset_peak_memory_stats (torch's own allocations on the current device, not the CUDA context).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

MB = 1e6  # bytes per MB in every table

_CLEAR_REFS, _STATUS = "/proc/self/clear_refs", "/proc/self/status"


def _status_bytes(field: str) -> Optional[int]:
    "A memory field of /proc/self/status (VmHWM, VmRSS), bytes; None without /proc."
    try:
        with open(_STATUS) as f: text = f.read()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return None if m is None else int(m.group(1))*1024


def _trim_heap() -> None:
    "Return malloc's free pages to the kernel (glibc's malloc_trim; nothing elsewhere)."
    global _libc
    if _libc is None:
        try: _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError: _libc = False
    if _libc and hasattr(_libc, "malloc_trim"): _libc.malloc_trim(0)


_libc = None


def _reset_peak() -> bool:
    "Set the process's resident-memory high-water mark to its current resident memory; False where the kernel does not allow it."
    try:
        with open(_CLEAR_REFS, "w") as f: f.write("5")
    except OSError:
        return False
    return True


RESETS = os.access(_CLEAR_REFS, os.W_OK) and _status_bytes("VmHWM") is not None  # per-block peaks (Linux) or the process's so far
NOTE = ("peak MB: resident-memory peak while the row's timed work ran (VmHWM, reset before it), the process's earlier memory "
        "included; +MB: that peak minus the resident memory when the row began (after malloc_trim)" if RESETS else
        "peak MB: the process's resident-memory peak so far (ru_maxrss: no /proc/self/clear_refs here to reset it per row); "
        "+MB: not measured")


def reset_peak() -> bool:
    """Start a new peak: hand malloc's free pages back, then reset the high-water mark to the resident memory now (Linux); False where
    that is impossible (the peak is then the process's so far). Also used by tests/conftest.py and .ci/nbdev_test_memory.py."""
    if not RESETS: return False
    _trim_heap()
    return _reset_peak()


def process_peak_bytes() -> int:
    "The process's resident-memory peak since it started or since the last reset, bytes."
    hwm = _status_bytes("VmHWM")
    if hwm is not None: return hwm
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss*1024  # bytes on macOS, kB on Linux and the BSDs


@dataclass
class Peak:
    "Memory of one measured block, bytes (None: not measured)."
    peak: Optional[int] = None  # resident-memory peak while it ran (RESETS) or the process's so far
    rise: Optional[int] = None  # peak minus the resident memory when it began (only where RESETS)
    cuda_peak: Optional[int] = None  # torch.cuda.max_memory_allocated while it ran (peak_memory(cuda=True))

    @property
    def peak_mb(self) -> Optional[float]: return None if self.peak is None else self.peak/MB

    @property
    def rise_mb(self) -> Optional[float]: return None if self.rise is None else self.rise/MB

    @property
    def cuda_peak_mb(self) -> Optional[float]: return None if self.cuda_peak is None else self.cuda_peak/MB

    def as_dict(self) -> dict:
        "peak_mb, rise_mb (and cuda_peak_mb where measured), for JSON output."
        out = dict(peak_mb=self.peak_mb, rise_mb=self.rise_mb)
        if self.cuda_peak is not None: out["cuda_peak_mb"] = self.cuda_peak_mb
        return out


def worst(peaks) -> Peak:
    "The largest of each field over several measured blocks (interleaved repeats of one row)."
    def top(xs):
        xs = [x for x in xs if x is not None]
        return max(xs) if xs else None
    peaks = list(peaks)
    return Peak(top(p.peak for p in peaks), top(p.rise for p in peaks), top(p.cuda_peak for p in peaks))


@contextmanager
def peak_memory(cuda: bool = False):
    "Measure the block: yields a Peak, filled in when the block ends."
    mem = Peak()
    if cuda:
        import torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = _status_bytes("VmRSS") if reset_peak() else None
    yield mem
    if cuda:
        torch.cuda.synchronize()
        mem.cuda_peak = torch.cuda.max_memory_allocated()
    mem.peak = process_peak_bytes()
    if start is not None: mem.rise = max(0, mem.peak - start)


def measure(fn, *args, cuda: bool = False, **kwargs) -> tuple:
    "fn(*args, **kwargs) measured by peak_memory: (its result, a Peak)."
    with peak_memory(cuda) as mem:
        out = fn(*args, **kwargs)
    return out, mem


def mb(x: Optional[float]) -> str:
    "A table cell for MB: whole MB, '-' when not measured."
    return "-" if x is None else f"{x:.0f}"
