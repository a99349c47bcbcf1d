"""Helpers shared by the benchmark scripts: the machine, the load, a child's peak memory."""

from __future__ import annotations

import os
import platform
import subprocess
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


def run_child(cmd: list[str]) -> dict:
    """Run ``cmd`` to its end; its wall time (s), peak resident memory (GB, its own and its
    waited-for children's, from ``wait4``: the process alone, not this one), exit code,
    output and the load average before and after."""
    import tempfile

    before = load()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0), err.seek(0)
        text, errors = out.read(), err.read()
    return {"wall_s": wall, "peak_gb": usage.ru_maxrss / 1e6, "code": proc.returncode,
            "stdout": text, "stderr": errors, "load": f"{before} -> {load()}"}  # fmt: skip
