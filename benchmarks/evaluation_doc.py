"""Write ``docs/evaluation.md``: how to run ``ctpmaps evaluate`` and its numbers on a cohort.

Runs ``ctpmaps evaluate`` on a phantom cohort (simulated first with ``ctpmaps phantom`` when
the folder holds none), or reads an evaluation folder written earlier (``--reuse``), and
writes the numbers into the guide, after its marker line: every table of the seed study's
analysis filled from ``evaluation.json``, no number typed by hand. The command, the cohort
and the wall time come from the evaluation's ``run.json``.

    python benchmarks/evaluation_doc.py OUT [--patients 30] [--matrix 128] [--seed 7]
        [--source truth --source truth-rule --source nlr --source cnn] [--workers 1]
        [--reuse DIR]
        [--doc docs/evaluation.md]
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from unet_eval import machine  # noqa: E402

from ctpmaps.evaluation.maps import LEVEL_MAPS  # noqa: E402

#: The doc's hand-written guide ends at this line; everything after it is written here.
MARKER = "<!-- numbers below: written by benchmarks/evaluation_doc.py -->"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="work folder: OUT/cohort, OUT/evaluation")
    p.add_argument("--patients", type=int, default=30)
    p.add_argument("--matrix", type=int, default=128)
    p.add_argument("--seed", type=int, default=7, help="cohort seed (not the demo weights')")
    p.add_argument("--source", action="append", default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--reuse", type=Path, default=None, help="an existing evaluation folder")
    p.add_argument("--doc", type=Path, default=Path("docs/evaluation.md"))
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> Path:
    """The cohort and the evaluation (the CLI, as a user runs it); the evaluation folder."""
    cohort, out = args.out / "cohort", args.out / "evaluation"
    ctpmaps = [sys.executable, "-m", "ctpmaps"]
    if not (cohort / "cohort.json").is_file():
        subprocess.run([*ctpmaps, "phantom", str(cohort), "--patients", str(args.patients),
                        "--matrix", str(args.matrix), "--seed", str(args.seed),
                        "--workers", "1"], check=True)  # fmt: skip
    sources = [x for s in (args.source or ["truth", "truth-rule", "nlr", "cnn"]) for x in ("-s", s)]
    subprocess.run([*ctpmaps, "evaluate", str(cohort), str(out), *sources, "--no-motion",
                    "--workers", str(args.workers)], check=True)  # fmt: skip
    return out


def _f(value: Any, digits: int = 3) -> str:
    if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float) and digits < 0:  # significant digits (p-values)
        return f"{value:.{-digits}g}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def markdown(rows: list[dict[str, Any]], columns: list[tuple[str, str, int]]) -> list[str]:
    """A markdown table of ``rows``: (header, key, digits) per column."""
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_f(r.get(k), d) for _, k, d in columns) + " |")
    return lines


def _ci(r: dict[str, Any]) -> dict[str, Any]:
    low, high = r.get("icc1k_ci95_low"), r.get("icc1k_ci95_high")
    ok = all(isinstance(v, float) and math.isfinite(v) for v in (low, high))
    return {**r, "pair": f"{r.get('source_a')} vs {r.get('source_b')}",
            "ci": f"[{low:.2f}, {high:.2f}]" if ok else "–"}  # fmt: skip


def numbers(ev: dict[str, Any], record: dict[str, Any]) -> list[str]:
    t, s = ev["tables"], ev["settings"]
    command = "ctpmaps " + shlex.join(record["command"][1:])
    seconds = record.get("timings_s", {}).get("total", math.nan)
    args = record["command"]
    workers = args[args.index("--workers") + 1] if "--workers" in args[:-1] else "1"
    where = "one dask worker" if workers == "1" else f"{workers} dask workers"
    n_failed = len(t.get("failures", []))
    maps_cols = [("map", "map", 0), ("source", "source", 0), ("n", "n_patients", 0),
                 ("MSE slice", "mse_slice_mean", 4), ("const. slice", "constant_mse_slice", 4),
                 ("MSE brain", "mse_brain_mean", 4), ("SD", "mse_brain_sd", 4),
                 ("const. brain", "constant_mse_brain", 4),
                 ("brain ÷ const.", "brain_mse_over_constant", 2),
                 ("cohort const. brain", "cohort_constant_mse_brain", 4),
                 ("brain ÷ cohort const.", "brain_mse_over_cohort_constant", 2),
                 ("PSNR brain (dB)", "psnr_brain_db", 1)]  # fmt: skip
    level_cols = [("map", "map", 0), ("source", "source", 0), ("n", "n_patients", 0),
                  ("level ratio mean", "level_ratio_mean", 3),
                  ("level ratio SD %", "level_ratio_sd_pct", 1),
                  ("MSE brain", "mse_brain_mean", 4),
                  ("level matched", "level_matched_mse_brain", 4),
                  ("brain ÷ const.", "brain_mse_over_constant", 2),
                  ("level matched ÷ const.", "level_matched_over_constant", 2)]  # fmt: skip
    dice_cols = [("lesion", "lesion", 0), ("pair", "pair", 0), ("n", "n", 0),
                 ("Dice mean", "dice_mean", 3), ("SD", "dice_sd", 3)]  # fmt: skip
    agree_cols = [("lesion", "lesion", 0), ("pair", "pair", 0), ("n", "n", 0),
                  ("Pearson r", "pearson_r", 3), ("p", "pearson_p", -2),
                  ("bias (mL)", "bias_ml", 2), ("LoA low", "loa_low_ml", 2),
                  ("LoA high", "loa_high_ml", 2), ("CR (mL)", "cr_ml", 2),
                  ("mean abs diff (mL)", "mean_abs_diff_ml", 2), ("ICC(1,k)", "icc1k", 3),
                  ("95 % CI", "ci", 0)]  # fmt: skip
    across_cols = [("lesion", "lesion", 0), ("sources", "sources", 0), ("n", "n_patients", 0),
                   ("test", "test", 0), ("statistic", "statistic", 2), ("p", "p", -2),
                   ("ICC(1,k)", "icc1k", 3), ("95 % CI", "ci", 0)]  # fmt: skip
    page = shlex.join(["benchmarks/evaluation_doc.py", *sys.argv[1:]])
    cohort_json = Path(s["cohort"]) / "cohort.json"
    phantom = "not a phantom cohort (no cohort.json)"
    if cohort_json.is_file():
        c = json.loads(cohort_json.read_text())
        phantom = (f"`ctpmaps phantom COHORT --patients {c['n_patients']} --matrix "
                   f"{c['config']['acquisition']['matrix']} --seed {c['seed']}`")  # fmt: skip
    excluded = sorted({r["patient"] for r in t["exclusions"] if r["excluded_from_dice"]})
    brain = [r for r in t["physical"] if r["region"] == "brain"]
    phys_cols = [("map", "map", 0), ("source", "source", 0), ("unit", "unit", 0),
                 ("median bias", "median_bias", 2), ("median abs error", "median_abs_error", 2),
                 ("median bias %", "median_bias_pct", 1)]  # fmt: skip
    return [
        "## Numbers on a phantom cohort",
        "",
        f"Written by `benchmarks/evaluation_doc.py` from `evaluation.json` ({machine()} when "
        "the page was written).",
        "",
        f"- Cohort: {s['n_patients']} patients evaluated ({n_failed} failed) of "
        f"`{s['cohort']}`, sources {', '.join(s['sources'])}, reference of the lesions "
        f"`{s['reference']}`, of the maps `{s['map_reference']}`, lesion rule "
        f"`{s['rule']}`.",
        f"- Cohort made by {phantom}.",
        f"- Command: `{command}`",
        f"- This page: `python {page}`",
        f"- Wall time of that command: {seconds / 60:.1f} min on {where} (2 CPU cores "
        "shared with other jobs; an upper bound).",
        "",
        "### Maps (the seed's Table 1)",
        "",
        "MSE on the normalised [0, 1] scale against the maps' reference, mean over patients, "
        "over the whole slices and inside the brain, the constant predictor (each patient's "
        "reference mean over the same voxels) beside each; inside the brain also the cohort's "
        "constant (one value for every patient, the mean of their brain means: it also pays "
        "for the patients' differences in level, e.g. bolus timing for TTP, which each "
        "patient's own mean leaves out).",
        "",
        *markdown(t["maps"], maps_cols),
        "",
        "Median bias and absolute error in physical units inside the brain:",
        "",
        *markdown(brain, phys_cols),
        "",
        "How much of each error is the patient's level (`ctpmaps.evaluation.maps`, "
        "\"Level\"): the ratio of the source's brain mean to the reference's (mean and SD "
        "between patients) and the MSE inside the brain once each patient's map is scaled "
        "to the reference's brain mean, beside the MSE as it is; both over the constant.",
        "",
        *markdown([r for r in t["maps"] if r["map"] in LEVEL_MAPS], level_cols),
        "",
        *by_bolus(ev),
        "### Dice (the seed's Table 2)",
        "",
        f"Patients left out of a lesion's Dice by the exclusion rule: {len(excluded)} "
        f"({', '.join(excluded) or 'none'}).",
        "",
        *markdown([_ci(r) for r in t["dice"]], dice_cols),
        "",
        "### Volume agreement (the seed's Figures 5 to 7)",
        "",
        *markdown([_ci(r) for r in t["volume_agreement"]], agree_cols),
        "",
        "Across all sources:",
        "",
        *markdown([_ci(r) for r in t["across_sources"]], across_cols),
        "",
    ]


def bolus_of(cohort: Path, patient: str) -> str | None:
    """A phantom patient's injection (``boxcar``, ``slow``, ``split``), with ", late" when
    its bolus arrives late, from its ``truth/truth.json``; None for other cohorts."""
    path = cohort / patient / "truth" / "truth.json"
    if not path.is_file():
        return None
    inp = json.loads(path.read_text()).get("input_function", {})
    return f"{inp.get('injection', '?')}{', late' if inp.get('late') else ''}"


def by_bolus(ev: dict[str, Any]) -> list[str]:
    """Map errors inside the brain per injection of the phantom's bolus: the ratio of the
    mean MSE to the mean constant predictor's (each patient's own brain mean) per group."""
    cohort = Path(ev["settings"]["cohort"])
    per_patient = ev["tables"]["maps_per_patient"]
    bolus = {pid: bolus_of(cohort, pid) for pid in {r["patient"] for r in per_patient}}
    if None in bolus.values():
        return []
    groups: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for r in per_patient:
        key = (r["map"], r["source"], bolus[r["patient"]])
        groups.setdefault(key, []).append((r["mse_brain"], r["constant_mse_brain"]))
    rows = [
        {"map": m, "source": src, "bolus": b, "n": len(v),
         "mse": sum(a for a, _ in v) / len(v), "const": sum(c for _, c in v) / len(v)}
        for (m, src, b), v in sorted(groups.items())
    ]  # fmt: skip
    for r in rows:
        r["ratio"] = r["mse"] / r["const"] if r["const"] > 0 else math.nan
    cols = [("map", "map", 0), ("source", "source", 0), ("bolus", "bolus", 0), ("n", "n", 0),
            ("MSE brain", "mse", 4), ("const. brain", "const", 4),
            ("brain ÷ const.", "ratio", 2)]  # fmt: skip
    return [
        "Inside the brain per injection of the phantom's bolus (`input_function` in each "
        "patient's `truth/truth.json`, `ctpmaps.phantom.inputs`: a boxcar of 7-12 s, a slow "
        "injection with a 14-20 s plateau, a split injection with two peaks 2-4 s apart; "
        "late: arriving 14-22 s after the first frame, so that tissue curves leave the "
        "acquisition before they return to baseline):",
        "",
        *markdown(rows, cols),
        "",
    ]


def figures(ev: dict[str, Any], img: Path) -> list[str]:
    """Map errors, Dice and the hypoperfusion Bland-Altman plots as PNGs beside the doc (the
    page's own figures, `ctpmaps.report.evaluation`); their markdown links."""
    from ctpmaps.io.atomic import atomic_path
    from ctpmaps.report.evaluation import bland_altman_figure, dice_figure, map_error_figure

    t = ev["tables"]
    made = {
        "evaluation_maps.png": map_error_figure(t["maps"]),
        "evaluation_dice.png": dice_figure(t["dice_per_patient"], ["core", "hypoperfusion"]),
        "evaluation_bland_altman.png": bland_altman_figure(
            t["volume_pairs"], t["volume_agreement"], "hypoperfusion"
        ),
    }
    links = []
    for name, png in made.items():
        if png is None:
            continue
        with atomic_path(img / name) as tmp:
            tmp.write_bytes(png)
        links += [f"![{name[:-4].replace('_', ' ')}](img/{name})", ""]
    return links


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    t0 = time.perf_counter()
    folder = args.reuse or run(args)
    ev = json.loads((folder / "evaluation.json").read_text())
    record = json.loads((folder / "run.json").read_text())
    from ctpmaps.io.atomic import atomic_path

    guide = args.doc.read_text().split(MARKER, 1)[0].rstrip() if args.doc.is_file() else ""
    lines = numbers(ev, record) + figures(ev, args.doc.parent / "img")
    text = f"{guide}\n\n{MARKER}\n\n" + "\n".join(lines)
    with atomic_path(args.doc) as tmp:
        tmp.write_text(text)
    print("\n".join(numbers(ev, record)))
    print(f"wrote {args.doc} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
