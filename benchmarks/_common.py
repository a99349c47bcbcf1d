"""Helpers shared by the benchmark scripts: the machine, the load, a child's peak memory."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def machine() -> str:
    """OS, CPU model, usable cores, RAM and Python, on one line."""
    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        names = [ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ram = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        ram = f", {kb / 2**20:.0f} GB RAM"
    return (f"{platform.platform()}, {cpu}, {cores} cores{ram}, "
            f"python {platform.python_version()}")  # fmt: skip


def load() -> str:
    """The load average over 1, 5 and 15 minutes, as ``uptime`` shows it."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


#: Runs ``python -m MODULE ARGS`` and writes the process's peak resident memory (VmHWM, kB)
#: to stderr at exit. ``ru_maxrss`` from ``wait4`` will not do: on Linux a child started
#: from a large process reports the parent's peak (the high-water mark survives fork and
#: exec), while VmHWM belongs to the new program's own memory.
_PEAK = """
import atexit, runpy, sys
@atexit.register
def _peak():
    with open("/proc/self/status") as fh:
        kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:"))
    sys.stderr.write(f"\\npeak-kB {kb}\\n")
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def run_child(cmd: list[str]) -> dict:
    """Run ``cmd`` (``[python, "-m", module, *args]``) to its end: its wall time (s), peak
    resident memory of that process (GB; not of processes it starts, such as dask workers
    or the elastix child), exit code, output and the load average before and after."""
    import tempfile

    if cmd[:2] == [sys.executable, "-m"]:
        cmd = [sys.executable, "-c", _PEAK, *cmd[2:]]
    before = load()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        code = subprocess.run(cmd, stdout=out, stderr=err, text=True).returncode
        wall = time.perf_counter() - t
        out.seek(0), err.seek(0)
        text, errors = out.read(), err.read()
    lines = errors.splitlines()
    peaks = [ln.split()[1] for ln in lines if ln.startswith("peak-kB ")]
    peak = int(peaks[-1]) / 1e6 if peaks else float("nan")
    errors = "\n".join(ln for ln in lines if not ln.startswith("peak-kB ")).strip()
    return {"wall_s": wall, "peak_gb": peak, "code": code, "stdout": text, "stderr": errors,
            "load": f"{before} -> {load()}"}  # fmt: skip
