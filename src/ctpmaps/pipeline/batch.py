"""The chain over every study of a cohort, on dask.distributed (``ctpmaps batch``).

- **Where it runs**: a local cluster by default (``workers`` processes, one thread each),
  or an existing cluster by its scheduler's address (or scheduler file): the same call scales
  from a laptop to many machines. Each worker runs one study at a time (a lock per worker,
  whatever its number of threads); a study's own stages use the worker's CPU threads
  (`ctpmaps.pipeline.cluster`, shared with ``ctpmaps evaluate``).
- **Resumable**: a study's output folder appears only when the study is complete
  (`ctpmaps.io.atomic`), so a complete study is skipped; killing the batch at any moment and
  running it again completes the cohort, with the same outputs as an uninterrupted run
  (staging folders of killed workers are removed by the next run into the same place).
- **One failing study never stops the others**: its error is recorded, the batch goes on,
  and the next run tries it again.
- **Summary**: ``cohort_summary.csv``, ``.json`` and ``.html`` (volumes, mismatch, decision
  support, time and peak memory per study, failures with their messages), rewritten at the
  end of every run from the studies' own outputs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError
from ..io.atomic import MANIFEST, atomic_path, check_output_dir
from ..io.cohort import CohortStudy, find_studies
from .cluster import guarded_study, run_on_cluster

__all__ = ["BATCH_RECORD", "SUMMARY_COLUMNS", "BatchResult", "run_batch", "summarise"]

log = logging.getLogger(__name__)

#: Written first into a batch's output folder: it is ctpmaps', and how it was started.
BATCH_RECORD = "batch.json"
#: Columns of ``cohort_summary.csv``.
SUMMARY_COLUMNS = (
    "study",
    "status",
    "core_ml",
    "penumbra_ml",
    "hypoperfusion_ml",
    "mismatch_ratio",
    "target_mismatch",
    "decision_supported",
    "caveats",
    "seconds",
    "peak_memory_gb",
    "error",
)


@dataclass
class BatchResult:
    """What a batch did: one row per study (`SUMMARY_COLUMNS`) and the files it wrote."""

    rows: list[dict[str, Any]]
    out: Path
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Rows of the studies that failed."""
        return [r for r in self.rows if r["status"] == "failed"]


def _run_one(study: str, out: str, options: dict[str, Any]) -> dict[str, Any]:
    """One study on a worker: its row, never an exception (the batch goes on)."""
    from .run import run_study

    def work() -> dict[str, Any]:
        run_study(study, out, **options)
        return {}

    return guarded_study(work)


def _complete(folder: Path) -> bool:
    return (folder / "run.json").is_file() and (folder / MANIFEST).is_file()


def _prepare(out: Path, cohort: Path, options: dict[str, Any]) -> None:
    """The batch folder: new, empty, or an earlier batch's (it holds `BATCH_RECORD`)."""
    if not (out / BATCH_RECORD).is_file():
        check_output_dir(out, inputs=[cohort])
    elif cohort.resolve() in [*out.resolve().parents, out.resolve()]:
        raise InputError(out, f"lies inside the input folder {cohort}: choose another")
    out.mkdir(parents=True, exist_ok=True)
    record = {"written_by": f"ctpmaps {__version__}", "cohort": str(cohort), "options": options}
    with atomic_path(out / BATCH_RECORD) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))


def run_batch(
    cohort: str | Path,
    out: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[str, dict[str, Any]], None] | None = None,
    **run_options: Any,
) -> BatchResult:
    """Run `ctpmaps.pipeline.run_study` on every study of ``cohort`` into ``out/<study>``.

    Parameters
    ----------
    cohort : str or Path
        A cohort folder (`ctpmaps.io.cohort.find_studies`).
    out : str or Path
        The batch's folder: new, empty, or an earlier batch's (resumed).
    scheduler : str, optional
        Address (``tcp://host:8786``) or scheduler file of a running dask scheduler; a local
        cluster of ``workers`` processes by default.
    workers : int, optional
        Processes of the local cluster (1 by default; each needs the memory of one study).
    progress : callable, optional
        ``progress(study, row)`` as each study is done, skipped or failed.
    **run_options
        Keywords of `run_study` (``method``, ``motion``, ``dicom`` ...), the same for all.

    Returns
    -------
    BatchResult

    Raises
    ------
    InputError
        No study in ``cohort``, or an unusable ``out`` (before any work).
    """
    cohort, out = Path(cohort), Path(out)
    studies = find_studies(cohort)
    _prepare(out, cohort, run_options)
    say = progress or (lambda study, row: None)
    rows: dict[str, dict[str, Any]] = {}
    todo: list[CohortStudy] = []
    for s in studies:
        if _complete(out / s.name):
            rows[s.name] = {"status": "skipped (complete)"}
            say(s.name, rows[s.name])
        else:
            todo.append(s)
    if todo:
        rows |= _run_all(todo, out, scheduler, workers, run_options, say)
    result = summarise(out, [s.name for s in studies], rows)
    log.info("batch of %d studies: %d failed", len(studies), len(result.failed))
    return result


def _run_all(todo, out: Path, scheduler, workers, options, say) -> dict[str, dict[str, Any]]:
    tasks = {s.name: (str(s.path), str(out / s.name), options) for s in todo}
    return run_on_cluster(_run_one, tasks, scheduler=scheduler, workers=workers, progress=say)


def _study_row(folder: Path, row: dict[str, Any]) -> dict[str, Any]:
    """A summary row from a study's own outputs (``volumes.json``, ``run.json``)."""
    out = {k: row.get(k) for k in SUMMARY_COLUMNS}
    if not _complete(folder):
        return out
    run = json.loads((folder / "run.json").read_text())
    d = run.get("results", {}).get("decision") or {}
    out |= {
        "core_ml": d.get("core_ml"),
        "penumbra_ml": d.get("penumbra_ml"),
        "hypoperfusion_ml": d.get("hypoperfusion_ml"),
        "mismatch_ratio": "inf" if d.get("mismatch_ratio_infinite") else d.get("mismatch_ratio"),
        "target_mismatch": d.get("target_mismatch"),
        "decision_supported": d.get("supported"),
        "caveats": "; ".join(c["code"] for c in run.get("results", {}).get("caveats", [])),
    }
    if out.get("seconds") is None:
        out["seconds"] = run.get("timings_s", {}).get("total")
    if out.get("peak_memory_gb") is None:
        out["peak_memory_gb"] = run.get("peak_memory_gb")
    return out


def summarise(out: Path, names: list[str], rows: dict[str, dict[str, Any]]) -> BatchResult:
    """Write ``cohort_summary.{csv,json,html}`` into ``out`` from every study's outputs."""
    from ..io.tables import write_csv, write_json
    from ..report.cohort import write_cohort_report

    table = []
    for name in names:
        row = _study_row(out / name, rows.get(name, {"status": "not run"}))
        table.append({**row, "study": name})
    files = {
        "csv": write_csv(table, out / "cohort_summary.csv", columns=list(SUMMARY_COLUMNS)),
        "json": write_json({"studies": table}, out / "cohort_summary.json"),
        "html": write_cohort_report(table, out / "cohort_summary.html"),
    }
    return BatchResult(table, out, files)
