"""The dask.distributed client of the cohort commands (``ctpmaps batch``, ``ctpmaps
evaluate``) and the lock that keeps one study per worker.

A local cluster of ``workers`` processes with one thread each by default, or an existing
cluster by its scheduler's address or scheduler file: the same call scales from a laptop to
many machines. Each worker runs one study at a time (`one_study_at_a_time`, a lock per
worker process whatever its number of threads); a study's own stages use the worker's CPU
threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import CtpmapsError

__all__ = ["dask_client", "one_study_at_a_time", "guarded_study", "run_on_cluster"]

_WORKER_LOCK = threading.Lock()  # per worker process: one study at a time


def one_study_at_a_time() -> threading.Lock:
    """The worker process's lock: hold it while a study is worked on."""
    return _WORKER_LOCK


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A `distributed.Client` for the duration of the block, closed (with its local
    cluster) on the way out.

    Parameters
    ----------
    scheduler : str, optional
        Address (``tcp://host:8786``) or scheduler file of a running scheduler; a local
        cluster by default.
    workers : int, optional
        Processes of the local cluster (1 by default), one thread each.
    """
    from distributed import Client, LocalCluster

    if not logging.getLogger("ctpmaps").isEnabledFor(logging.INFO):
        # dask's own INFO chatter (workers starting and stopping), here and in the workers
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if scheduler:
        client = (
            Client(scheduler_file=scheduler) if Path(scheduler).is_file() else Client(scheduler)
        )
    else:
        cluster = LocalCluster(
            n_workers=workers or 1, threads_per_worker=1, processes=True,
            dashboard_address=None, memory_limit=0, scheduler_kwargs={"dashboard": False},
        )  # fmt: skip
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def guarded_study(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one study's ``work`` on a worker, one at a time: its row (``status`` "done" and
    what ``work`` returned, or "failed" and the ``error``; ``seconds``), never an exception,
    so that one failing study never stops the others."""
    t0 = time.perf_counter()
    with one_study_at_a_time():
        try:
            row = {"status": "done", **work()}
        except CtpmapsError as exc:
            row = {"status": "failed", "error": str(exc)}
        except Exception as exc:  # a bug: recorded, the others go on
            row = {"status": "failed", "error": f"unexpected {type(exc).__name__}: {exc}"}
    return {**row, "seconds": time.perf_counter() - t0}


def run_on_cluster(
    func: Callable[..., dict[str, Any]],
    tasks: Mapping[str, tuple],
    *,
    scheduler: str | None,
    workers: int | None,
    progress: Callable[[str, dict[str, Any]], None],
    prefix: str = "ctpmaps",
) -> dict[str, dict[str, Any]]:
    """``func(*args)`` for every ``name: args`` of ``tasks`` on a cluster (`dask_client`);
    the row each returns by name, ``progress(name, row)`` as each finishes. A task lost with
    its worker (or that cannot be sent) gives a "failed" row."""
    from distributed import as_completed

    rows: dict[str, dict[str, Any]] = {}
    with dask_client(scheduler, workers) as client:
        futures = {
            client.submit(func, *args, key=f"{prefix}-{name}", pure=False): name
            for name, args in tasks.items()
        }
        for future in as_completed(futures):
            name = futures[future]
            try:
                rows[name] = future.result()
            except Exception as exc:  # a worker lost, a pickling error: recorded
                rows[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            progress(name, rows[name])
    return rows
