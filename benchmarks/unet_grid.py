"""Which grid for U-Nets trained on coarse slices, applied to 512 x 512 studies: measured.

A model trained on 128 x 128 slices (1.95 mm pixels) meets 512 x 512 studies (0.49 mm) in
practice. Three ways are scored on held-out 512 x 512 phantom patients, inside the brain,
against the phantom truth and against NLR on the same filtered frames, beside a constant
predictor (the reference's brain mean) and NLR's own error against the truth:

- ``native``: the network run on the 512 x 512 slices as they are (what ctpmaps did before);
- ``resampled``: slices area-averaged onto the model's training pixel size, the map brought
  back by brain-weighted bicubic interpolation (`ctpmaps.nn.grid`, the default now);
- ``fine-tuned``: the same weights trained further on 512 x 512 slices of another phantom
  cohort (``--finetune-cohort``, ``--finetune-epochs``; two folds, the better kept), then
  run on their own grid.

    python benchmarks/unet_grid.py --weights DIR --test-cohort T512 \\
        [--finetune-cohort F512 --finetune-epochs 10 --out OUT] [--doc docs/unet_grid.md]

Prints the table (and writes it to ``--doc`` with the machine, date and command; ``--append``
adds it as a section).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from unet_eval import machine, score_models, start, table  # noqa: E402

from ctpmaps.io.atomic import atomic_path  # noqa: E402
from ctpmaps.nn import TrainConfig, load_models  # noqa: E402
from ctpmaps.nn.dataset import find_cohort  # noqa: E402
from ctpmaps.nn.train import train  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, nargs="+", help="models trained on coarse slices")
    p.add_argument("--test-cohort", type=Path, required=True, help="512 x 512 phantom cohort")
    p.add_argument("--finetune-cohort", type=Path, default=None)
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("--finetune-lr", type=float, default=1e-4)
    p.add_argument("--out", type=Path, default=Path("unet-grid"), help="fine-tuning runs")
    p.add_argument("--cache-dir", type=Path, default=None, help="default OUT/cache")
    p.add_argument("--doc", type=Path, default=None, help="write the table here (markdown)")
    p.add_argument("--append", action="store_true", help="add to --doc instead of replacing")
    p.add_argument("--title", default="U-Net: which grid at 512 x 512 (generated)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def fine_tune(models, args: argparse.Namespace, cache: Path) -> list[Path]:
    """Each model trained further at full size on ``--finetune-cohort``."""
    paths = []
    for m in models:
        done = m.meta.get("training") or {}
        cfg = TrainConfig(
            target=m.target,
            target_source=m.meta.get("target_source") or "nlr",
            features=list(m.meta["architecture"]["features"]),
            n_frames=m.meta["n_frames"],
            epochs_pre=0,
            epochs_fine=args.finetune_epochs,
            lr=args.finetune_lr,
            batch=int(done.get("batch", 8)),
            plateau_patience=int(done.get("plateau_patience", 4)),
            folds=2,
            test_fraction=0.0,
            sigma_spatial_mm=m.filter_sigmas[0],
            sigma_range_hu=m.filter_sigmas[1],
            init_weights=str(m.path.resolve()),
            command="python benchmarks/unet_grid.py " + shlex.join(sys.argv[1:]),
        )
        t0 = time.perf_counter()
        out = args.out / f"finetune-{m.target}"
        result = train(args.finetune_cohort, out, cfg, cache_dir=cache, device=args.device)
        print(f"{m.target}: fine-tuned in {time.perf_counter() - t0:.0f} s", flush=True)
        paths.append(Path(result["model"]))
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cache = start(args)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    models = load_models(args.weights, device=device)
    sets = {"native": models, "resampled": models}
    if args.finetune_cohort is not None:
        sets["fine-tuned"] = load_models(fine_tune(models, args, cache), device=device)
    cohort = find_cohort(args.test_cohort)
    print(f"scoring {len(cohort.patients)} patients of {cohort.root}", flush=True)
    scores = score_models(
        sets, cohort, cohort.patients, cache_dir=cache, resample={"native": False}
    )
    lines = table(scores, [m.target for m in models])
    print("\n".join(lines))
    if args.doc is not None:
        head = [
            f"{'##' if args.append else '#'} {args.title}",
            "",
            f"`python benchmarks/unet_grid.py {shlex.join(sys.argv[1:])}`",
            "",
            machine(),
            "",
            "MSE on the normalised [0, 1] scale, inside the phantom's brain mask of "
            f"{len(cohort.patients)} held-out 512 x 512 patients (`{cohort.root.name}`); "
            "`MSE rim`: the brain's outer 4 mm; `MSE lesion`: the true hypoperfused "
            "tissue; `const`: the reference's brain mean; "
            "`NLR` rows: NLR's own maps against the truth.",
            "",
        ]
        before = args.doc.read_text() + "\n" if args.append and args.doc.is_file() else ""
        with atomic_path(args.doc) as tmp:
            tmp.write_text(before + "\n".join(head + lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
