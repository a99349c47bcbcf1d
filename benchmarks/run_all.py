"""Run every ``benchmarks/bench_*.py`` in turn (``make bench``), each with its defaults;
exit non-zero if any missed its target.

The machine and the load average (1, 5, 15 min) are printed before each script: the machine
is often shared, and the scripts compare methods side by side within one run for that
reason. ``--only run batch`` runs ``bench_run.py`` and ``bench_batch.py`` alone.

Run: ``python benchmarks/run_all.py [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _common import load, machine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=None, help="names after bench_, e.g. run")
    args = ap.parse_args(argv)
    here = Path(__file__).parent
    scripts = sorted(here.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    print(f"# run_all  {machine()}")
    failed = []
    for script in scripts:
        print(f"\n=== {script.name}  (load average {load()})", flush=True)
        t = time.perf_counter()
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failed.append(script.name)
        print(f"=== {script.name}: {time.perf_counter() - t:.0f} s", flush=True)
    if failed:
        print(f"\nmissed targets: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
