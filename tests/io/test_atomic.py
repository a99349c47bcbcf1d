"""Output folders: checked before any work, staged, and never touching what ctpmaps did not
write (`ctpmaps.io.atomic`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ctpmaps.errors import InputError
from ctpmaps.io.atomic import MANIFEST, OutputFolder, atomic_dir, check_output_dir


def _write(folder, files):
    with atomic_dir(folder, overwrite=True) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def test_new_folder_gets_files_and_a_manifest(tmp_path):
    _write(tmp_path / "out", {"a.txt": "1", "sub/b.txt": "2"})
    record = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert sorted(record["files"]) == ["a.txt", "sub/b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging left


def test_empty_existing_folder_is_used(tmp_path):
    (tmp_path / "out").mkdir()
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("1")
    assert (tmp_path / "out" / "a.txt").read_text() == "1"


def test_overwrite_replaces_only_our_files(tmp_path):
    out = tmp_path / "out"
    _write(out, {"a.txt": "1", "old.txt": "stale", "sub/c.txt": "3"})
    (out / "notes.txt").write_text("the user's")
    (out / "sub" / "mine.txt").write_text("the user's too")
    with pytest.raises(InputError, match="already exists"):
        check_output_dir(out)
    _write(out, {"a.txt": "new"})
    assert (out / "a.txt").read_text() == "new"
    assert not (out / "old.txt").exists() and not (out / "sub" / "c.txt").exists()
    assert (out / "notes.txt").read_text() == "the user's"
    assert (out / "sub" / "mine.txt").read_text() == "the user's too"
    assert sorted(json.loads((out / MANIFEST).read_text())["files"]) == ["a.txt"]


def test_refuses_folders_of_others_and_changed_files(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "data.dcm").write_bytes(b"x")
    with pytest.raises(InputError, match="did not write"):
        check_output_dir(theirs, overwrite=True)
    out = tmp_path / "out"
    _write(out, {"a.txt": "1"})
    (out / "a.txt").write_text("edited by hand")
    with pytest.raises(InputError, match="changed after ctpmaps wrote it"):
        check_output_dir(out, overwrite=True)
    assert (theirs / "data.dcm").read_bytes() == b"x"


def test_refuses_the_input_inside_or_around(tmp_path):
    study = tmp_path / "danger" / "dicom"
    study.mkdir(parents=True)
    (study / "1.dcm").write_bytes(b"x")
    with pytest.raises(InputError, match="holds the input"):
        check_output_dir(tmp_path / "danger", overwrite=True, inputs=[study])
    with pytest.raises(InputError, match="inside the input"):
        check_output_dir(study / "out", inputs=[study])


def test_unusable_locations(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        OutputFolder(tmp_path / "file" / "out")
    with pytest.raises(InputError, match="not a folder"):
        OutputFolder(tmp_path / "file")
    readonly = tmp_path / "ro"
    readonly.mkdir(mode=0o555)
    # root ignores permission bits: /sys is read-only for everyone
    target = (readonly if os.geteuid() != 0 else Path("/sys/ctpmaps")) / "out"
    with pytest.raises(InputError, match="cannot write here"):
        OutputFolder(target)


def test_failure_leaves_nothing_and_stale_staging_is_removed(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "a" / "b" / "out") as tmp:
        (tmp / "x.txt").write_text("1")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # the parents made for it are gone too
    stale = tmp_path / ".out.ctpmaps-partial.abc"
    stale.mkdir()
    (stale / ".ctpmaps-partial").write_text("999999999")  # a process that does not run
    unknown = tmp_path / ".out.ctpmaps-partial.def"  # no marker: not provably ours
    unknown.mkdir()
    _write(tmp_path / "out", {"a.txt": "1"})
    assert not stale.exists() and unknown.exists()
