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
methods' lesions use the one lesion rule the U-Net's maps allow (`rule_of`, as ``ctpmaps
evaluate`` chooses it: ``tmax``, the rule of the truth's masks, when a Tmax model is
trained, else ``cbv``: core on CBV, hypoperfusion on TTP); the doc names the rule the
evaluations recorded.

Every cohort, training run and evaluation is written under ``OUT`` and reused when there
(a rerun with the same arguments only redoes what is missing); the table, a plot and the
commands go to ``--doc`` (``docs/results.md``). CPU training is slow: the defaults are a
small-scale run; the docstring of ``main`` and the doc give the full-scale command.

    python benchmarks/dose_experiment.py OUT [--patients 12] [--matrix 128] [--seed 31]
        [--frames 89 44 22 10 5] [--mas 150 75 40] [--mas-frames 22]
        [--maps cbv cbf ttp tmax]
        [--features 8,16,32,64,128] [--temporal F] [--time-head]
        [--target-source truth] [--epochs-pre 12] [--epochs-fine 4] [--folds 1]
        [--augment] [--time-shift] [--enhancement-scale] [--patience 10] [--jobs 2]
        [--doc docs/results.md] [--threads N] [--device cpu|cuda]

Training runs are independent: ``--jobs N`` trains N at a time in separate processes (one
torch thread each unless ``--threads``), after the cohorts' preprocessed frames and NLR
targets are cached once.
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
    p.add_argument("--maps", nargs="+", default=["cbv", "cbf", "ttp", "tmax"])
    p.add_argument("--target-source", nargs="+", choices=("truth", "nlr"), default=["truth"])
    p.add_argument("--features", default="8,16,32,64,128")
    p.add_argument("--temporal", type=int, default=0, help="temporal stem width (0: none)")
    p.add_argument("--time-head", action="store_true", help="TTP: soft argmax over frames")
    p.add_argument("--epochs-pre", type=int, default=12)
    p.add_argument("--epochs-fine", type=int, default=4)
    p.add_argument("--pre-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--folds", type=int, default=1, help="1: one train/validation split")
    p.add_argument("--patience", type=int, default=10, help="plateau epochs before lr halves")
    p.add_argument("--augment", action="store_true", help="random flips of training slices")
    p.add_argument("--time-shift", action="store_true", help="random start within the frame stride")
    p.add_argument(
        "--enhancement-scale", action="store_true", help="inputs on one input-function area"
    )
    p.add_argument("--jobs", type=int, default=1, help="training runs at a time (processes)")
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
              config=config, workers=args.jobs)  # fmt: skip
    return root


def timed(args, key: str, func, *fargs, **fkw) -> None:
    """Run ``func(*fargs, **fkw)`` and record its seconds (`record`)."""
    t0 = time.perf_counter()
    func(*fargs, **fkw)
    record(args, key, time.perf_counter() - t0)


#: When this call last recorded a step (`record`): the wall clock counts from there.
_LAST_RECORD: list[float] = []


def record(args, key: str, seconds: float) -> None:
    """Add a step's seconds to ``OUT/timings.json`` (the doc counts each step once, even
    over reruns that reuse earlier steps), and the wall time since this call's previous
    step to ``_wall``: an interrupted call keeps all but its unfinished steps' time."""
    path = args.out / "timings.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    done[key] = max(seconds, done.get(key, 0.0))  # a rerun that finds it done takes less
    now = time.perf_counter()
    if _LAST_RECORD:
        done["_wall"] = done.get("_wall", 0.0) + now - _LAST_RECORD[-1]
    _LAST_RECORD[:] = [now]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(done, indent=1))
    log.info("%s: %.0f s", key, seconds)


def run_folder(args, mas: float, t: int, source: str, target: str) -> Path:
    """Training run folder of one map at one setting."""
    scaled = "-scaled" if args.enhancement_scale else ""  # other models: another folder
    return args.out / "runs" / f"{mas:g}mAs-T{t}-{source}{scaled}" / target


def train_config(args, t: int, source: str, target: str):
    """The run's `TrainConfig` (masked loss: the maps are scored inside the brain)."""
    from ctpmaps.nn import TrainConfig

    return TrainConfig(
        target=target, target_source=source, n_frames=t,
        features=[int(v) for v in args.features.split(",")], temporal=args.temporal,
        time_head=args.time_head and target == "ttp",
        epochs_pre=args.epochs_pre, epochs_fine=args.epochs_fine,
        pre_size=args.pre_size, lr=args.lr, folds=args.folds,
        test_fraction=args.test_fraction, seed=args.seed, masked_loss=True,
        augment=args.augment, time_shift=args.time_shift, plateau_patience=args.patience,
        enhancement_scale=args.enhancement_scale,
        command=shlex.join(sys.argv),
    )  # fmt: skip


def _in_process(threads: int, func, *fargs, **fkw) -> float:
    """``func(*fargs, **fkw)`` with ``threads`` torch threads; its seconds (pool jobs)."""
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    func(*fargs, **fkw)
    return time.perf_counter() - t0


def _load(cohort_dir: Path, pid: str, sources: list[str], cache: Path) -> None:
    from ctpmaps.nn.dataset import find_cohort, load_patient

    cohort = find_cohort(cohort_dir)
    for source in sources:
        load_patient(cohort, pid, target="cbv", source=source, cache_dir=cache)


def _die_with_parent() -> None:
    """Pool initializer: on Linux, the worker gets SIGTERM when this script dies, so that
    killing the script (a plain ``kill``, which reaches only its own process) does not
    leave training runs going at full CPU with no one to collect them."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import os
    import signal

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the script died before the call
        os._exit(1)


def pooled(args, jobs: list[tuple[str, Any, tuple, dict]]) -> None:
    """Run ``(key, func, fargs, fkw)`` jobs, ``--jobs`` at a time in separate processes
    (in this one for ``--jobs 1``), adding each one's seconds to ``OUT/timings.json``."""
    if args.jobs <= 1:
        for key, func, fargs, fkw in jobs:
            timed(args, key, func, *fargs, **fkw)
        return
    if not jobs:
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # torch and forked threads do not mix
    with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_die_with_parent) as pool:
        futures = {
            pool.submit(_in_process, args.threads or 1, func, *fargs, **fkw): key
            for key, func, fargs, fkw in jobs
        }
        for future in as_completed(futures):
            record(args, futures[future], future.result())


def train_all(args, roots: dict[float, Path]) -> None:
    """Every missing training run: the cohorts' frames and NLR targets are cached first
    (one job per patient), then one job per run (a complete run folder is reused)."""
    from ctpmaps.nn.dataset import find_cohort
    from ctpmaps.nn.train import train

    todo = []
    for mas, t in settings(args):
        for source in args.target_source:
            for target in args.maps:
                run = run_folder(args, mas, t, source, target)
                if not (run / f"{target}.safetensors").is_file():
                    todo.append((mas, t, source, target, run))
    prepare = []
    for mas in sorted({job[0] for job in todo}, reverse=True):
        cache = args.out / f"cache-{mas:g}mAs"
        for pid in find_cohort(roots[mas]).patients:
            fargs = (roots[mas], pid, args.target_source, cache)
            prepare.append((f"cache-{mas:g}mAs/{pid}", _load, fargs, {}))
    pooled(args, prepare)
    jobs = []
    for mas, t, source, target, run in todo:
        cfg = train_config(args, t, source, target)
        fkw = {"cache_dir": args.out / f"cache-{mas:g}mAs", "device": args.device}
        jobs.append((str(run.relative_to(args.out)), train, (roots[mas], run, cfg), fkw))
    pooled(args, jobs)


def weights_of(args, mas: float, t: int, source: str) -> list[Path]:
    """The models of one setting (`train_all`)."""
    return [run_folder(args, mas, t, source, m) / f"{m}.safetensors" for m in args.maps]


def rule_of(weights: list[Path]) -> str:
    """The lesion rule of both methods of a setting, as ``ctpmaps evaluate`` chooses it for
    NLR and a U-Net of these ``weights`` (`ctpmaps.pipeline.evaluate.lesion_rule`): ``tmax``,
    the rule that defines the truth's masks, when the U-Net makes Tmax, else ``cbv``."""
    from ctpmaps.pipeline.evaluate import lesion_rule, parse_sources

    return lesion_rule(parse_sources(["nlr", "cnn"]), [str(w) for w in weights])


def _evaluate(
    root: Path, out: Path, method: str, t: int, weights: list[Path], device, rule: str
) -> None:
    """``evaluate_sources`` of ``truth`` and one method under ``rule``; a refusal (no
    patient could be evaluated, e.g. NLR on 5 frames) is logged and recorded
    (`refused_file`)."""
    from ctpmaps.errors import InputError
    from ctpmaps.pipeline.evaluate import evaluate_sources

    cnn = method != "nlr"
    try:
        evaluate_sources(
            root, out, sources=["truth", "cnn" if cnn else "nlr"], reference="truth",
            patients_from=weights[0].parent / "splits.json", frames=t, rule=rule,
            weights=[str(w) for w in weights], device=device, motion=False, workers=1,
            training=[w.parent for w in weights] if cnn else (), overwrite=out.exists(),
        )  # fmt: skip
    except InputError as exc:
        log.warning("%s: %s", out.name, exc)
        refused_file(out).parent.mkdir(parents=True, exist_ok=True)
        refused_file(out).write_text(json.dumps({"refused": str(exc)}))


def refused_file(out: Path) -> Path:
    """Where `_evaluate` records a refusal, so that a rerun does not try again (the
    evaluation's own folder is left empty by a refusal)."""
    return out.parent / f"{out.name}.refused.json"


def eval_folder(args, mas: float, t: int, method: str) -> Path:
    scaled = "-scaled" if args.enhancement_scale and method.startswith("cnn") else ""
    return args.out / "eval" / f"{mas:g}mAs-T{t}-{method}{scaled}"


def evaluate_all(args, roots: dict[float, Path]) -> None:
    """Every missing evaluation: ``truth`` against each U-Net (its training runs' CV table
    and learning curves included) and against NLR on the same T frames and test patients,
    apart so that a failing fit of one method does not hide the other's patients."""
    jobs = []
    for mas, t in settings(args):
        weights = {s: weights_of(args, mas, t, s) for s in args.target_source}
        methods = [(f"cnn-{s}", weights[s]) for s in args.target_source]
        methods.append(("nlr", weights[args.target_source[0]]))  # the same test patients
        for method, w in methods:
            out = eval_folder(args, mas, t, method)
            if not (out / "evaluation.json").is_file() and not refused_file(out).is_file():
                fargs = (roots[mas], out, method, t, w, args.device, rule_of(w))
                jobs.append((str(out.relative_to(args.out)), _evaluate, fargs, {}))
    pooled(args, jobs)


def evaluation(args, mas: float, t: int, method: str) -> dict | None:
    """One evaluation's ``evaluation.json``, None when it could not run."""
    path = eval_folder(args, mas, t, method) / "evaluation.json"
    return json.loads(path.read_text()) if path.is_file() else None


def rows_of(ev: dict | None, mas: float, t: int, name: str, label: str) -> dict[str, Any]:
    """One method's row of an evaluation: map errors, Dice and volume error vs truth."""
    row: dict[str, Any] = {"mas": mas, "frames": t, "method": label, "n_patients": 0}
    if ev is None:
        return row
    tables = ev["tables"]
    row["n_patients"], row["rule"] = ev["settings"]["n_patients"], ev["settings"]["rule"]
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
                f"- T = {r['frames']}: NLR gave no maps on any test patient (the reason: "
                f"`OUT/eval/{r['mas']:g}mAs-T{r['frames']}-nlr.refused.json`); "
                f"{r['method']} mapped {r['n_patients']}."
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


def write_doc(args, rows, seconds: float, wall: float, header: str) -> None:
    from ctpmaps.io.atomic import atomic_path

    top_frames = max(args.frames)
    n_test = max(1, round(args.patients * args.test_fraction))
    lines = [
        "# Results: the reduced-dose experiment",
        "",
        "Written by `benchmarks/dose_experiment.py` (do not edit by hand).",
        "",
        f"Machine: {header}. Wall time: {wall / 60:.0f} min with {args.jobs} job(s) at a "
        f"time ({seconds / 60:.0f} min summed over the steps: cohorts, caches, training runs, "
        "evaluations; `OUT/timings.json`); the machine was shared with other jobs, so this "
        "is an upper bound.",
        "",
        "## Scale of this run",
        "",
        f"{args.patients} phantom patients at {args.matrix} x {args.matrix} (cohort seed "
        f"{args.seed}), {n_test} held out for testing and scored below. One U-Net per map, "
        f"setting and target source (widths {args.features.replace(',', '-')}"
        f"{f', temporal stem {args.temporal}' if args.temporal else ''}"
        f"{', time head for TTP' if args.time_head else ''}), trained on "
        f"{'one train/validation split' if args.folds == 1 else f'{args.folds} folds'} for "
        f"{args.epochs_pre} epochs at {args.pre_size} px and {args.epochs_fine} at full size "
        f"(lr {args.lr:g}, halved after {args.patience} epochs without progress), MSE inside "
        f"the brain{', random flips' if args.augment else ''}"
        f"{', random start within the frame stride' if args.time_shift else ''}"
        f"{', enhancement scaled to one input-function area' if args.enhancement_scale else ''}"
        "; targets: "
        f"{', '.join(args.target_source)}. The seed trained 50 epochs at 512 x 512 on 100 "
        "patients; the shipped demo weights (docs/unet.md) 100 + 20 epochs with widths "
        "16-256 on 52 patients (34 for training, 18 for validation): the numbers answer the "
        "question at this run's scale.",
        "",
        "## Table",
        "",
        "MSE inside the brain against the phantom's true maps on the normalised [0, 1] scale "
        "(`ctpmaps.evaluation`, mean over the test patients), with its ratio to the constant "
        "predictor's (the true brain mean; below 1 beats predicting nothing). Dice of core "
        "and hypoperfusion against the true masks (patients without a true lesion left out, "
        "docs/evaluation.md), mean absolute volume difference against the true volume. NLR "
        "is fitted on the same T frames as the U-Net sees; both segmented with the "
        f"{' / '.join(f'`{r}`' for r in sorted({r['rule'] for r in rows if 'rule' in r}))} rule. "
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
        "Each setting's evaluation folder (`OUT/eval/<mAs>mAs-T<T>-<method>/report.html`) "
        "holds every table and figure of `ctpmaps evaluate` for it (the seed's Tables 1 "
        "and 2, Figures 4 to 7; for a U-Net also its training's cross-validation table and "
        "learning curves).",
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
    _LAST_RECORD[:] = [t0]
    roots = {mas: cohort(args, mas) for mas in sorted({m for m, _ in settings(args)})}
    train_all(args, roots)
    evaluate_all(args, roots)
    rows: list[dict[str, Any]] = []
    for mas, t in settings(args):
        for source in args.target_source:
            ev = evaluation(args, mas, t, f"cnn-{source}")
            rows.append(rows_of(ev, mas, t, "cnn", f"U-Net ({source} targets)"))
        rows.append(rows_of(evaluation(args, mas, t, "nlr"), mas, t, "nlr", "NLR"))
    rows.sort(key=lambda r: (-r["mas"], -r["frames"], r["method"]))
    timings = json.loads((args.out / "timings.json").read_text())
    wall = timings.pop("_wall", 0.0)
    seconds = sum(timings.values())
    log.info("wall time %.0f s (this call %.0f s); steps summed %.0f s", wall,
             time.perf_counter() - t0, seconds)  # fmt: skip
    print("\n".join(table(rows, args.maps)))
    plot(rows, args.maps, args.mas_frames, args.plot)
    write_doc(args, rows, seconds, wall, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
