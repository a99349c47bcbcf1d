"""The reduced-dose experiment: U-Net and NLR on the same fewer or noisier frames, against truth.

Two ways to lower the dose, each against the phantom's true maps and lesions:

- **fewer frames**: T frames kept by uniform stride from frame 0 (``--frames``, the seed's
  89 down to 5) at the full tube current;
- **lower tube current**: cohorts simulated at ``--mas`` (noise grows as 1/sqrt(mAs)) with
  ``--mas-frames`` frames.

For each setting, one U-Net per map (``--maps``) is trained on that setting's frames
(`ctpmaps.nn.train.train`, targets from ``--target-source``: the phantom's true maps and/or
NLR maps fitted on all frames), and the held-out test patients of its split are evaluated by
`ctpmaps.pipeline.evaluate.evaluate_sources` with the sources ``truth``, ``nlr`` (the box
NLR fitted on the same T frames) and ``cnn`` (the U-Net on them): MSE inside the brain on
the normalised [0, 1] scale beside the constant predictor (the true brain mean), Dice of
core and hypoperfusion against the true masks, mean absolute volume difference. Both
methods' lesions use the one lesion rule the U-Net's maps allow (``cbv``: core on CBV,
hypoperfusion on TTP; `ctpmaps.pipeline.evaluate.lesion_rule`).

Every cohort, training run and evaluation is written under ``OUT`` and reused when there
(a rerun with the same arguments only redoes what is missing); the table, a plot and the
commands go to ``--doc`` (``docs/results.md``). CPU training is slow: the defaults are a
small-scale run; the docstring of ``main`` and the doc give the full-scale command.

    python benchmarks/dose_experiment.py OUT [--patients 12] [--matrix 128] [--seed 31]
        [--frames 89 44 22 10 5] [--mas 150 75 40] [--mas-frames 22] [--maps cbv cbf ttp]
        [--target-source truth] [--epochs-pre 12] [--epochs-fine 4] [--folds 1]
        [--doc docs/results.md] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from unet_eval import machine  # noqa: E402

log = logging.getLogger("dose_experiment")

FULL_SCALE = (
    "python benchmarks/dose_experiment.py runs/dose --patients 115 --matrix 512 "
    "--target-source truth nlr --epochs-pre 250 --epochs-fine 50 --pre-size 128 "
    "--lr 1e-5 --folds 3 --device cuda"
)
LESIONS = ("core", "hypoperfusion")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="work folder: cohorts, training runs, evaluations")
    p.add_argument("--patients", type=int, default=12)
    p.add_argument("--matrix", type=int, default=128)
    p.add_argument("--seed", type=int, default=31, help="cohort seed (same anatomy per mAs)")
    p.add_argument("--frames", type=int, nargs="+", default=[89, 44, 22, 10, 5])
    p.add_argument("--mas", type=float, nargs="+", default=[150.0, 75.0, 40.0])
    p.add_argument("--mas-frames", type=int, default=22, help="frames of the mAs series")
    p.add_argument("--maps", nargs="+", default=["cbv", "cbf", "ttp"])
    p.add_argument("--target-source", nargs="+", choices=("truth", "nlr"), default=["truth"])
    p.add_argument("--features", default="8,16,32,64,128")
    p.add_argument("--epochs-pre", type=int, default=12)
    p.add_argument("--epochs-fine", type=int, default=4)
    p.add_argument("--pre-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--folds", type=int, default=1, help="1: one train/validation split")
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if any)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--doc", type=Path, default=Path("docs/results.md"))
    p.add_argument("--plot", type=Path, default=Path("docs/img/dose_experiment.png"))
    return p.parse_args(argv)


def settings(args: argparse.Namespace) -> list[tuple[float, int]]:
    """(mAs, T) pairs: every T at the highest mAs, then every other mAs at ``mas_frames``."""
    top = max(args.mas)
    pairs = [(top, t) for t in args.frames]
    pairs += [(m, args.mas_frames) for m in args.mas if m != top]
    return list(dict.fromkeys(pairs))


def cohort(args: argparse.Namespace, mas: float) -> Path:
    """The phantom cohort at ``mas`` (same seed: same patients, only the noise differs)."""
    from ctpmaps.phantom import PhantomConfig, acquisition_preset
    from ctpmaps.phantom.write import write_cohort

    root = args.out / f"cohort-{mas:g}mAs"
    if not (root / "cohort.json").is_file():
        acq = acquisition_preset("seed", matrix=args.matrix, exposure_mas=mas)
        config = PhantomConfig(acquisition=acq)
        timed(args, root.name, write_cohort, root, n_patients=args.patients, seed=args.seed,
              config=config, workers=1)  # fmt: skip
    return root


def timed(args, key: str, func, *fargs, **fkw) -> None:
    """Run ``func(*fargs, **fkw)`` and add its seconds to ``OUT/timings.json`` (the doc's wall time
    counts each step once, even over reruns that reuse earlier steps)."""
    t0 = time.perf_counter()
    func(*fargs, **fkw)
    path = args.out / "timings.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    done[key] = time.perf_counter() - t0
    path.write_text(json.dumps(done, indent=1))
    log.info("%s: %.0f s", key, done[key])


def train_models(args, root: Path, mas: float, t: int, source: str) -> list[Path]:
    """One U-Net per map on T frames (reused when its run folder is complete)."""
    from ctpmaps.nn import TrainConfig
    from ctpmaps.nn.train import train

    paths = []
    for target in args.maps:
        run = args.out / "runs" / f"{mas:g}mAs-T{t}-{source}" / target
        model = run / f"{target}.safetensors"
        if not model.is_file():
            cfg = TrainConfig(
                target=target, target_source=source, n_frames=t,
                features=[int(v) for v in args.features.split(",")],
                epochs_pre=args.epochs_pre, epochs_fine=args.epochs_fine,
                pre_size=args.pre_size, lr=args.lr, folds=args.folds,
                test_fraction=args.test_fraction, seed=args.seed, masked_loss=True,
                command=shlex.join(sys.argv),
            )  # fmt: skip
            cache = args.out / f"cache-{mas:g}mAs"
            key = str(run.relative_to(args.out))
            timed(args, key, train, root, run, cfg, cache_dir=cache, device=args.device)
        paths.append(model)
    return paths


def evaluate(args, root: Path, mas: float, t: int, method: str, weights: list[Path]):
    """``evaluate_sources`` of ``truth`` and one method (``nlr`` or ``cnn``) on the split's
    test patients on T frames, apart so that a failing fit of one method (NLR on 5 frames)
    does not hide the other's patients; None when no patient could be evaluated."""
    from ctpmaps.errors import InputError
    from ctpmaps.pipeline.evaluate import evaluate_sources

    out = args.out / "eval" / f"{mas:g}mAs-T{t}-{method}"
    if not (out / "evaluation.json").is_file():
        try:
            timed(
                args, str(out.relative_to(args.out)), evaluate_sources,
                root, out, sources=["truth", "nlr" if method == "nlr" else "cnn"],
                reference="truth", patients_from=weights[0].parent / "splits.json", frames=t,
                rule="cbv", weights=[str(w) for w in weights], device=args.device,
                motion=False, workers=1, overwrite=out.exists(),
            )  # fmt: skip
        except InputError as exc:
            log.warning("%s: %s", out.name, exc)
            return None
    return json.loads((out / "evaluation.json").read_text())


def rows_of(ev: dict | None, mas: float, t: int, name: str, label: str) -> dict[str, Any]:
    """One method's row of an evaluation: map errors, Dice and volume error vs truth."""
    row: dict[str, Any] = {"mas": mas, "frames": t, "method": label, "n_patients": 0}
    if ev is None:
        return row
    tables = ev["tables"]
    row["n_patients"] = ev["settings"]["n_patients"]
    for r in tables["maps"]:
        if r["source"] == name:
            row[f"{r['map']}_ratio"] = r["brain_mse_over_constant"]
            row[f"{r['map']}_mse"] = r["mse_brain_mean"]
    for r in tables["dice"]:
        if r["source_a"] == name and r["source_b"] == "truth" and r["lesion"] in LESIONS:
            row[f"dice_{r['lesion']}"] = r["dice_mean"]
    for r in tables["volume_agreement"]:
        if r["source_a"] == name and r["source_b"] == "truth" and r["lesion"] in LESIONS:
            row[f"vol_{r['lesion']}"] = r["mean_abs_diff_ml"]
    return row


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def table(rows: list[dict[str, Any]], maps: list[str]) -> list[str]:
    head = (
        "| mAs | T | method | n | "
        + " | ".join(f"{m.upper()} MSE (÷ const)" for m in maps)
        + " | Dice core | Dice hypo | abs vol diff core (mL) | abs vol diff hypo (mL) |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [f"{r['mas']:g}", str(r["frames"]), r["method"], str(r["n_patients"])]
        cells += [f"{_f(r.get(f'{m}_mse'), 4)} ({_f(r.get(f'{m}_ratio'), 2)})" for m in maps]
        cells += [_f(r.get("dice_core")), _f(r.get("dice_hypoperfusion"))]
        cells += [_f(r.get("vol_core"), 1), _f(r.get("vol_hypoperfusion"), 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def answer(rows: list[dict[str, Any]], maps: list[str], top_frames: int) -> list[str]:
    """The question of the issue, from the rows: at a quarter of the frames or less, is the
    U-Net's map error against truth below NLR's on the same frames?"""
    out = []
    for r in rows:
        if r["method"] == "NLR" or r["frames"] > top_frames / 4 or r["mas"] != rows[0]["mas"]:
            continue
        nlr = next((n for n in rows if n["method"] == "NLR" and n["frames"] == r["frames"]
                    and n["mas"] == r["mas"]), None)  # fmt: skip
        if nlr is None:
            continue
        if not nlr["n_patients"]:
            out.append(
                f"- T = {r['frames']}: NLR gave no maps on any test patient (see its "
                f"evaluation's failures); {r['method']} mapped {r['n_patients']}."
            )
            continue
        wins = [m for m in maps if (r.get(f"{m}_mse") or math.inf) < (nlr.get(f"{m}_mse") or 0)]
        out.append(
            f"- T = {r['frames']}, {r['method']}: MSE inside the brain below NLR's for "
            f"{len(wins)} of {len(maps)} maps ({', '.join(w.upper() for w in wins) or 'none'})."
        )
    return out


def plot(rows: list[dict[str, Any]], maps: list[str], mas_frames: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ctpmaps.io.atomic import atomic_path

    top = max(r["mas"] for r in rows)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method in methods:
        sel = sorted((r for r in rows if r["method"] == method and r["mas"] == top),
                     key=lambda r: r["frames"])  # fmt: skip
        x = [r["frames"] for r in sel]
        for m, style in zip(maps, ("-o", "--s", ":^"), strict=False):
            axes[0].plot(x, [r.get(f"{m}_ratio", math.nan) for r in sel], style,
                         label=f"{method} {m.upper()}")  # fmt: skip
        axes[1].plot(x, [r.get("dice_hypoperfusion", math.nan) for r in sel], "-o",
                     label=f"{method} hypoperfusion")  # fmt: skip
        axes[1].plot(x, [r.get("dice_core", math.nan) for r in sel], "--s",
                     label=f"{method} core")  # fmt: skip
        sel = sorted((r for r in rows if r["method"] == method and r["frames"] == mas_frames),
                     key=lambda r: r["mas"])  # fmt: skip
        for m, style in zip(maps, ("-o", "--s", ":^"), strict=False):
            axes[2].plot([r["mas"] for r in sel], [r.get(f"{m}_ratio", math.nan) for r in sel],
                         style, label=f"{method} {m.upper()}")  # fmt: skip
    axes[0].set(xscale="log", yscale="log", xlabel="frames T",
                ylabel="brain MSE / constant predictor's",
                title=f"Map error vs truth, {top:g} mAs")  # fmt: skip
    axes[1].set(xscale="log", xlabel="frames T", ylabel="Dice vs true mask",
                title=f"Lesions vs truth, {top:g} mAs", ylim=(0, 1))  # fmt: skip
    axes[2].set(yscale="log", xlabel=f"tube current-time product (mAs), T = {mas_frames}",
                ylabel="brain MSE / constant predictor's", title="Map error vs mAs")  # fmt: skip
    for ax in (axes[0], axes[2]):
        ax.axhline(1.0, color="grey", lw=0.5)
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_doc(args, rows, seconds: float, header: str) -> None:
    from ctpmaps.io.atomic import atomic_path

    top_frames = max(args.frames)
    n_test = max(1, round(args.patients * args.test_fraction))
    lines = [
        "# Results: the reduced-dose experiment",
        "",
        "Written by `benchmarks/dose_experiment.py` (do not edit by hand).",
        "",
        f"Machine: {header}. Wall time: {seconds / 60:.0f} min, the sum of every step "
        "(cohorts, training runs, evaluations) once, from `OUT/timings.json`; the machine "
        "was shared with other jobs, so this is an upper bound.",
        "",
        "## Scale of this run",
        "",
        f"**Small-scale run.** {args.patients} phantom patients at {args.matrix} x "
        f"{args.matrix} (cohort seed {args.seed}), {n_test} held out for testing and scored "
        f"below; one U-Net per map and setting, trained on "
        f"{'one train/validation split' if args.folds == 1 else f'{args.folds} folds'} for "
        f"{args.epochs_pre} epochs at {args.pre_size} px and {args.epochs_fine} at full size "
        f"(lr {args.lr:g}), targets: {', '.join(args.target_source)} only. The seed trained 50 "
        "epochs at 512 x 512 on 100 patients: these U-Nets are far from converged and the "
        "numbers answer the question for this scale only.",
        "",
        "## Table",
        "",
        "MSE inside the brain against the phantom's true maps on the normalised [0, 1] scale "
        "(`ctpmaps.evaluation`, mean over the test patients), with its ratio to the constant "
        "predictor's (the true brain mean; below 1 beats predicting nothing). Dice of core "
        "and hypoperfusion against the true masks (patients without a true lesion left out, "
        "docs/evaluation.md), mean absolute volume difference against the true volume. NLR "
        "is fitted on the same T frames as the U-Net sees; both segmented with the `cbv` rule. "
        "One difference remains between training and use: the U-Net trained on frames "
        "filtered over all 89 frames and then sub-sampled (the training cache), while "
        "evaluation sub-samples first and filters the T frames, as a scanner would give them. "
        "n is the number of test patients evaluated; a method whose fit failed on a patient "
        "(e.g. no bolus found on 5 frames) lists it in its evaluation's `failures` table.",
        "",
        *table(rows, args.maps),
        "",
        "![accuracy against dose](img/dose_experiment.png)",
        "",
        "## The question",
        "",
        "At a quarter of the frames or less, are the U-Net's maps closer to the truth than "
        f"NLR's on the same frames? ({max(args.mas):g} mAs)",
        "",
        *(answer(rows, args.maps, top_frames) or ["- no setting at T <= a quarter was run."]),
        "",
        "## Commands",
        "",
        "This run:",
        "",
        "```",
        "python " + shlex.join(["benchmarks/dose_experiment.py", *sys.argv[1:]]),
        "```",
        "",
        "The full-scale experiment (the seed's cohort size, resolution and epochs; a GPU):",
        "",
        "```",
        FULL_SCALE,
        "```",
        "",
        "Each setting's evaluation folder (`OUT/eval/<mAs>mAs-T<T>-<targets>/report.html`) "
        "holds every table and figure of `ctpmaps evaluate` for it.",
        "",
    ]
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.doc) as tmp:
        tmp.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Run every setting, print the table, write the doc and the plot."""
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    header = machine()
    print(header, flush=True)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for mas, t in settings(args):
        root = cohort(args, mas)
        new = []
        for source in args.target_source:
            weights = train_models(args, root, mas, t, source)
            ev = evaluate(args, root, mas, t, f"cnn-{source}", weights)
            new.append(rows_of(ev, mas, t, "cnn", f"U-Net ({source} targets)"))
        ev = evaluate(args, root, mas, t, "nlr", weights)  # the same test patients
        new.append(rows_of(ev, mas, t, "nlr", "NLR"))
        rows += new
        print("\n".join(table(new, args.maps)[2:]), flush=True)
    rows.sort(key=lambda r: (-r["mas"], -r["frames"], r["method"]))
    seconds = sum(json.loads((args.out / "timings.json").read_text()).values())
    log.info("this call: %.0f s; every step once: %.0f s", time.perf_counter() - t0, seconds)
    print("\n".join(table(rows, args.maps)))
    plot(rows, args.maps, args.mas_frames, args.plot)
    write_doc(args, rows, seconds, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
