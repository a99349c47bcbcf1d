"""Fuzz both study readers on a large budget and write docs/robustness.md.

Every case changes one file of a small pristine study (DICOM: uncompressed, RLE, JPEG
Lossless, enhanced multi-frame; NIfTI with sidecar, 5D NIfTI) and reads it with
`ctpmaps.io.load_study`; see `ctpmaps.io.testing.fuzz` for how each outcome is judged.
Prints progress and a summary, writes the document (every number in it comes from this
run or from the readers' constants) and exits 1 when any case shows a defect.

    nice -n 10 python benchmarks/fuzz_readers.py --cases 10000 [--seed 0] [--doc PATH]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

from ctpmaps.io.dicom.headers import MAX_SIDE
from ctpmaps.io.dicom.order import MAX_DURATION_S
from ctpmaps.io.nifti import MAX_HU
from ctpmaps.io.testing.fuzz import BAD_OUTCOMES, FuzzReport, run_fuzz

ROOT = Path(__file__).resolve().parents[1]


def _document(
    report: FuzzReport,
    command: str,
    started: str,
    seconds: float,
    load: str,
    bounds: tuple[float, float],
) -> str:
    counts = report.counts()
    kinds = report.kinds()
    failed, garbage = counts["failed"], counts["garbage"]
    worst_s = max(c.seconds for c in report.cases)
    worst_mb = max(c.peak_mb for c in report.cases)
    samples = sorted({c.sample for c in report.cases})
    lines = [
        "# Robustness of the study readers",
        "",
        "What the readers do with the inputs scanners, archives and users really hand them",
        "(issue 14), and the record of the large fuzz run. This file is written by",
        "`benchmarks/fuzz_readers.py`; rerun it to refresh the numbers.",
        "",
        "## Decisions",
        "",
        "- **Any folder.** Files that are not images of a series are skipped and listed in",
        "  `Study.problems`: non-DICOM files, unreadable headers, a DICOMDIR (the files it",
        "  lists are read where they lie: the folder is searched recursively), a file without",
        "  *SeriesInstanceUID* (a Philips DIRFILE), objects without pixel data (dose reports,",
        "  structured reports). When the series then misses a frame, the error lists the",
        "  files skipped.",
        "- **Files without preamble and file meta.** A bare dataset, as some old scanners and",
        "  archives write, may be a valid image: it is read when its first element is a group",
        "  0002 or 0008 element, with the encoding pydicom detects (implicit or explicit VR",
        "  little endian). Anything else without the `DICM` marker is not DICOM.",
        "- **The perfusion series.** Among several series, localizers and surviews (ImageType),",
        "  secondary captures and other non-CT SOP classes, derived series, non-CT modalities",
        "  and series with one image per slice position are never chosen.",
        "- **Every header value checked where it is read**: a malformed, multi-valued,",
        "  non-finite or implausible value in a file of the series read is an `InputError`",
        "  naming the file and the tag (geometry, rescale, Modality LUT Sequence, pixel",
        "  description against the pixel data's length, transfer syntax, times, metadata).",
        f"  Images larger than {MAX_SIDE} pixels a side, acquisitions spanning more than",
        f"  {MAX_DURATION_S:.0f} s and NIfTI values beyond {MAX_HU:g} HU are refused as",
        "  implausible.",
        "- **NIfTI**: a .nii.gz is read to the end of its gzip stream, so that its CRC is",
        "  checked (nibabel alone reads only the bytes the data need and loads a corrupted",
        "  file silently); the header's data size must fit in the file; a 5D image",
        "  (x, y, z, 1, t), as ISLES 2018 ships CT perfusion, is read as 4D; the affine must be",
        "  finite and non-singular; the sidecar must be a UTF-8 JSON object whose `FrameTimes`",
        "  are numbers, in `FrameTimesUnits` (default s).",
        "",
        "The catalogue of bad inputs, each with its expected error, is",
        "`tests/io/test_bad_inputs.py`; the fuzz test on a small budget is",
        "`tests/io/test_fuzz.py` (environment variables `CTPMAPS_FUZZ_CASES`,",
        "`CTPMAPS_FUZZ_SEED`).",
        "",
        "## Large fuzz run",
        "",
        f"`{command}` (niced): started {started}, {seconds / 60:.1f} min,",
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()},",
        f"load average {load} (other jobs share the machine).",
        "",
        "| what | result |",
        "|---|---|",
        f"| mutated inputs (one file changed each) | {len(report.cases)} |",
        f"| distinct mutation kinds | {len(kinds)} |",
        f"| samples mutated | {', '.join(samples)} |",
        f"| loaded, and sound | {counts['loaded']} |",
        f"| refused with `InputError` | {counts['refused']} |",
        f"| exceptions other than `InputError` | {failed} |",
        f"| loaded with non-finite values or impossible geometry or times | {garbage} |",
        f"| slower than {bounds[0]:g} s, above {bounds[1]:g} MB traced | "
        f"{counts['slow']}, {counts['memory']} |",
        f"| slowest case | {worst_s:.2f} s |",
        f"| largest traced memory of a case | {worst_mb:.1f} MB |",
        "",
        "Most frequent kinds (cases):",
        "",
    ]
    lines += [f"- `{kind}`: {n}" for kind, n in kinds.most_common(12)]
    bad = report.bad
    lines += ["", "Cases with a defect:" if bad else "No case showed a defect.", ""]
    lines += [
        f"- case {c.index} ({c.sample}, `{c.kind}`): {c.outcome}: {c.detail}" for c in bad[:20]
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "robustness.md")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="per case")
    parser.add_argument("--max-mb", type=float, default=512.0, help="traced memory per case")
    args = parser.parse_args(argv)
    command = "python benchmarks/fuzz_readers.py " + " ".join(argv or sys.argv[1:])
    started = datetime.datetime.now().isoformat(timespec="minutes")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    step = max(1, args.cases // 20)

    def progress(case) -> None:
        if (case.index + 1) % step == 0:
            print(f"fuzz_readers: {case.index + 1}/{args.cases}", flush=True)
        if case.outcome in BAD_OUTCOMES:
            print(f"fuzz_readers: BAD {case}", flush=True)

    report = run_fuzz(
        args.cases,
        seed=args.seed,
        max_seconds=args.max_seconds,
        max_mb=args.max_mb,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    load = f"{load0:.1f} -> {os.getloadavg()[0]:.1f}"
    for line in report.lines():
        print(f"fuzz_readers: {line}")
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    bounds = (args.max_seconds, args.max_mb)
    args.doc.write_text(_document(report, command.strip(), started, seconds, load, bounds))
    print(f"fuzz_readers: wrote {args.doc}")
    return 1 if report.bad else 0


if __name__ == "__main__":
    sys.exit(main())
