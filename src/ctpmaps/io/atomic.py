"""Outputs that never touch what ctpmaps did not write, and never stay half-written.

`atomic_path` writes one file under a temporary name and renames it into place.

`atomic_dir` (and `OutputFolder` behind it) writes a whole output folder:

- the location is checked before any work (`check_output_dir`): not a file, a writable
  place (a staging folder is created there at once, which proves it), not the input nor
  inside it, and either new, empty, or a folder of an earlier ctpmaps run;
- everything is written into the staging folder ``.<name>.ctpmaps-partial.<random>`` beside
  the output, then moved into place: a new or empty output receives the staging folder by
  one rename; an earlier run's folder has only the files that run wrote replaced or
  removed, as listed in its manifest (``.ctpmaps-manifest.json``: path and SHA-256 of every
  file written), and everything else in it is left alone. A manifest file that was changed
  since, or a new output whose name is taken by a file ctpmaps did not write, stops the run
  before any work;
- on any failure (an exception, SIGINT, SIGTERM turned into an exception by the command
  line) the staging folder and any parent folder created for it are removed; after a
  SIGKILL, the next run into the same place removes the staging folders of dead processes
  (recognised by the marker file inside them, never by name alone).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import InputError, OutputError

__all__ = [
    "MANIFEST",
    "atomic_path",
    "atomic_dir",
    "check_output_dir",
    "OutputFolder",
    "sha256_file",
]

#: The manifest of an output folder: every file ctpmaps wrote there, with its SHA-256.
MANIFEST = ".ctpmaps-manifest.json"
#: Marker inside a staging folder: its owner's process id.
_MARKER = ".ctpmaps-partial"
_PARTIAL = ".ctpmaps-partial."


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; rename it to ``path`` on success.

    The temporary name keeps the suffixes (``.nii.gz`` stays recognisable to writers).
    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix="".join(path.suffixes), dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's content, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_manifest(folder: Path) -> dict[str, str] | None:
    """Relative path -> SHA-256 of the files an earlier run wrote, or None without one."""
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = record["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
        return {str(k): str(v) for k, v in files.items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem = f"unreadable manifest of an earlier run: {exc}"
        raise InputError(folder / MANIFEST, problem) from exc


def _entries(folder: Path) -> list[Path]:
    """What the folder holds, except our manifest and staging leftovers."""
    return [p for p in folder.iterdir() if p.name != MANIFEST]


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _overlaps(out: Path, inputs: Iterable[str | Path]) -> str | None:
    out_r = out.resolve()
    for item in inputs:
        src = Path(item).resolve()
        if src == out_r or out_r in src.parents:
            return f"holds the input {item}: choose an output folder outside the input"
        if src.is_dir() and src in out_r.parents:
            return f"lies inside the input folder {item}: choose an output folder outside it"
    return None


def check_output_dir(
    path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()
) -> dict[str, str] | None:
    """Check that ``path`` can receive a new output folder, before any work is done.

    Parameters
    ----------
    path : str or Path
        The output folder.
    overwrite : bool
        Allow replacing the files of an earlier ctpmaps run in ``path``.
    inputs : iterable of paths
        Files or folders the run reads: ``path`` may neither hold them nor lie inside them.

    Returns
    -------
    dict or None
        The earlier run's manifest (relative path -> SHA-256) when ``path`` holds one.

    Raises
    ------
    InputError
        ``path`` is a file or lies under one, holds or lies inside an input, holds files
        ctpmaps did not write, holds an earlier run and ``overwrite`` is False, or a file
        of the earlier run was changed since.
    """
    path = Path(path)
    base = _nearest_existing(path.parent if not path.exists() else path)
    if path.exists() and not path.is_dir():
        raise InputError(path, "exists and is not a folder: choose a folder for the outputs")
    if not base.is_dir():
        raise InputError(path, f"cannot be created: {base} is a file, not a folder")
    problem = _overlaps(path, inputs)
    if problem:
        raise InputError(path, problem)
    if not path.exists() or not _entries(path):
        return None
    manifest = _read_manifest(path)
    if manifest is None:
        raise InputError(
            path,
            "holds files ctpmaps did not write: choose a new or empty folder "
            "(nothing there is replaced, even with --overwrite)",
        )
    if not overwrite:
        raise InputError(
            path,
            "already exists (an earlier run): use --overwrite to replace the files that run "
            "wrote (overwrite=True in Python); other files are left alone",
        )
    for rel, digest in manifest.items():
        f = path / rel
        if f.is_file() and sha256_file(f) != digest:
            raise InputError(f, "was changed after ctpmaps wrote it: not replacing it")
    return manifest


class OutputFolder:
    """A staging folder for ``path``, checked and created at once, moved into place by
    `commit` (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The output folder.
    overwrite : bool
        Replace the files of an earlier ctpmaps run in ``path``.
    inputs : iterable of paths
        What the run reads (`check_output_dir`).
    """

    def __init__(
        self, path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()
    ) -> None:
        self.path = Path(path)
        self.manifest = check_output_dir(self.path, overwrite=overwrite, inputs=inputs)
        parent = self.path.parent
        self._created = [p for p in (parent, *parent.parents) if not p.exists()][::-1]
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_staging(parent, self.path.name)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}{_PARTIAL}", dir=parent))
            (self.staging / _MARKER).write_text(_process_id(os.getpid()))
        except OSError as exc:
            self._remove_created()
            raise InputError(self.path, f"cannot write here: {exc.strerror or exc}") from exc
        os.chmod(self.staging, 0o777 & ~_umask())
        #: Inside another output's staging folder: that output's manifest records us.
        self._nested = any(_PARTIAL in p.name and (p / _MARKER).exists() for p in parent.parents)
        self._nested |= _PARTIAL in parent.name and (parent / _MARKER).exists()

    def discard(self) -> None:
        """Remove the staging folder and the parents created for it."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self._remove_created()

    def _remove_created(self) -> None:
        for p in reversed(self._created):
            with contextlib.suppress(OSError):
                p.rmdir()  # only if still empty

    def commit(self) -> Path:
        """Move the staged files into ``path``; returns ``path``."""
        (self.staging / _MARKER).unlink()
        new = _digests(self.staging)
        try:
            if not self.path.exists():
                if not self._nested:
                    _write_manifest(self.staging, new)
                os.replace(self.staging, self.path)
                return self.path
            self._merge(new)
        except OSError as exc:
            raise OutputError(f"{self.path}: could not move the outputs into place: {exc}") from exc
        shutil.rmtree(self.staging, ignore_errors=True)
        return self.path

    def _merge(self, new: dict[str, str]) -> None:
        old = _read_manifest(self.path) or {}
        for rel in new:
            target = self.path / rel
            if target.exists() and rel not in old:
                raise OutputError(f"{target}: exists and was not written by ctpmaps")
        _write_manifest(self.path, {**old, **new})  # everything below stays ours if cut short
        for rel in new:
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.staging / rel, target)
        for rel in set(old) - set(new):
            with contextlib.suppress(FileNotFoundError):
                (self.path / rel).unlink()
            _prune_empty(self.path / rel, self.path)
        _write_manifest(self.path, new)


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def _write_manifest(folder: Path, files: dict[str, str]) -> None:
    from .. import __version__

    record = {
        "written_by": f"ctpmaps {__version__}",
        "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    }
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")


def _prune_empty(path: Path, top: Path) -> None:
    for p in path.parents:
        if p == top or top not in p.parents:
            return
        try:
            p.rmdir()
        except OSError:
            return


def _process_id(pid: int) -> str:
    """``pid`` and, where /proc tells it, the process's start time: a pid reused by another
    process later does not pass for the staging folder's owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return str(pid)


def _running(owner: str) -> bool:
    """Whether the process recorded as ``owner`` (`_process_id`) still runs (a zombie, killed
    but not reaped, does not)."""
    pid = int(owner.split()[0])
    if pid == os.getpid():
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return _signal_ok(pid)
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    return len(owner.split()) == 1 or _process_id(pid) == owner.strip()


def _signal_ok(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Remove staging folders of ``name`` left by processes that no longer run."""
    for p in parent.glob(f".{name}{_PARTIAL}*"):
        try:
            owner = (p / _MARKER).read_text()
            running = _running(owner)
        except (OSError, ValueError):
            continue  # not provably ours
        if not running:
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(
    path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()
) -> Iterator[Path]:
    """Yield a staging folder for ``path``; move its files into ``path`` on success.

    See the module docstring and `OutputFolder`: ``overwrite`` replaces only the files an
    earlier ctpmaps run wrote; on failure nothing is left behind.
    """
    folder = OutputFolder(path, overwrite=overwrite, inputs=inputs)
    try:
        yield folder.staging
    except BaseException:
        folder.discard()
        raise
    try:
        folder.commit()
    except BaseException:
        folder.discard()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
