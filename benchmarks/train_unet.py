"""Train the CBV, CBF and TTP U-Nets on a phantom cohort and score held-out patients.

Trains one model per map with `ctpmaps.nn.train.train` (patient-wise k-fold CV and a
held-out test set) on NLR targets (as the seed) or on the phantom's true maps, then runs
the held-out test patients (or those of ``--test-cohort``) through the inference path
(filter of the training frames, `predict_maps`) and prints, per map, the MSE inside the
brain on the normalised [0, 1] scale against the phantom truth and against NLR, beside a
constant predictor (the reference's brain mean) and NLR's own error against the truth.
Writes the table to ``OUT/scores.md``. Uses CUDA when present (mixed precision); on CPU the
defaults (widths 8-128, 22 frames, 40 + 10 epochs at 64 and full size) take about a
quarter of an hour per map on a 30-patient 128 x 128 cohort.

    python benchmarks/train_unet.py COHORT OUT [--target-source nlr|truth] [--maps cbv cbf ttp]
        [--features 8,16,32,64,128] [--temporal F] [--time-head] [--frames 22] [--epochs-pre 40]
        [--epochs-fine 10] [--pre-size 64] [--lr 1e-3] [--folds 3] [--masked-loss] [--augment]
        [--time-shift] [--enhancement-scale] [--weights-dtype float16]
        [--test-cohort DIR] [--threads N]

Run it once per target source to put the two side by side.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from unet_eval import machine, score_models, start, table  # noqa: E402

from ctpmaps.io.atomic import atomic_path  # noqa: E402
from ctpmaps.nn import TrainConfig, load_models  # noqa: E402
from ctpmaps.nn.dataset import find_cohort  # noqa: E402
from ctpmaps.nn.train import train  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cohort", type=Path, help="phantom cohort (ctpmaps phantom)")
    p.add_argument("out", type=Path, help="run folder: OUT/<map>/ per model, OUT/scores.md")
    p.add_argument("--target-source", choices=("nlr", "truth"), default="nlr")
    p.add_argument("--maps", nargs="+", default=["cbv", "cbf", "ttp"])
    p.add_argument("--features", default="8,16,32,64,128")
    p.add_argument("--temporal", type=int, default=0, help="temporal stem width (0: none)")
    p.add_argument("--time-head", action="store_true", help="TTP: soft argmax over frames")
    p.add_argument("--frames", type=int, default=22)
    p.add_argument("--epochs-pre", type=int, default=40)
    p.add_argument("--epochs-fine", type=int, default=10)
    p.add_argument("--pre-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--masked-loss", action="store_true", help="MSE inside the brain only (and selection)"
    )
    p.add_argument("--augment", action="store_true", help="random flips of training slices")
    p.add_argument("--time-shift", action="store_true", help="random start within the frame stride")
    p.add_argument(
        "--enhancement-scale", action="store_true", help="inputs on one input-function area"
    )
    p.add_argument("--weights-dtype", default="float32", choices=("float32", "float16"))
    p.add_argument("--test-cohort", type=Path, default=None, help="held-out patients instead")
    p.add_argument("--cache-dir", type=Path, default=None, help="default OUT/cache")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if any)")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def train_maps(args: argparse.Namespace, cache: Path) -> dict[str, Path]:
    """One model per map; returns their paths (a finished run is resumed, i.e. kept)."""
    paths = {}
    for target in args.maps:
        cfg = TrainConfig(
            target=target,
            target_source=args.target_source,
            features=[int(v) for v in args.features.split(",")],
            temporal=args.temporal,
            time_head=args.time_head and target == "ttp",
            n_frames=args.frames,
            epochs_pre=args.epochs_pre,
            epochs_fine=args.epochs_fine,
            pre_size=args.pre_size,
            lr=args.lr,
            batch=args.batch,
            plateau_patience=args.patience,
            folds=args.folds,
            seed=args.seed,
            masked_loss=args.masked_loss,
            augment=args.augment,
            time_shift=args.time_shift,
            enhancement_scale=args.enhancement_scale,
            weights_dtype=args.weights_dtype,
            command="python benchmarks/train_unet.py " + shlex.join(sys.argv[1:]),
        )
        t0 = time.perf_counter()
        result = train(args.cohort, args.out / target, cfg, cache_dir=cache, device=args.device)
        test = result["test"] or {}
        print(
            f"{target}: trained in {time.perf_counter() - t0:.0f} s; test MSE in brain "
            f"{test.get('mse_brain', float('nan')):.4f} (constant "
            f"{test.get('const_mse_brain', float('nan')):.4f}) against {args.target_source}",
            flush=True,
        )
        paths[target] = Path(result["model"])
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cache = start(args)
    paths = train_maps(args, cache)
    if args.test_cohort is not None:
        cohort = find_cohort(args.test_cohort)
        patients = list(cohort.patients)
    else:
        cohort = find_cohort(args.cohort)
        splits = json.loads((args.out / args.maps[0] / "splits.json").read_text())
        patients = splits["test"]
    label = f"U-Net ({args.target_source} targets)"
    print(f"scoring {len(patients)} held-out patients of {cohort.root}", flush=True)
    models = load_models(list(paths.values()), device=args.device or "cpu")
    scores = score_models({label: models}, cohort, patients, cache_dir=cache)
    lines = table(scores, args.maps)
    print("\n".join(lines))
    with atomic_path(args.out / "scores.md") as tmp:
        tmp.write_text(f"{machine()}\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
