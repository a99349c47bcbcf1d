"""Benchmark: U-Net inference per 512 x 512 x 8 study and training throughput, on CPU.

Inference: `predict_map` (one map) on a synthetic 512 x 512 x 8 study of 89 frames, per
width preset, best of ``--repeats``; a study's three maps (CBV, CBF, TTP) take three times
that. Each preset twice in one run: a model of 0.49 mm pixels (the network runs on the
512 x 512 slices) and a model trained on 128 x 128 slices of 1.95 mm (the slices are
resampled to 128 x 128 and the map back, `ctpmaps.nn.grid`), with their ratio.
Training: slices per second of forward + backward + Adam step at the pre-training size
(128 x 128, batch 8, 89 frames). Untrained weights: time does not depend on their values.
Prints machine, torch threads and date first.

    python benchmarks/bench_nn.py [--presets demo small paper] [--repeats 2] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from unet_eval import machine  # noqa: E402

from ctpmaps.io.study import Study  # noqa: E402
from ctpmaps.nn.predict import LoadedModel, predict_map  # noqa: E402
from ctpmaps.nn.unet import PRESETS, UNet, count_parameters  # noqa: E402

WIDTHS = {"demo": (8, 16, 32, 64, 128), **PRESETS}


def synthetic_study(n: int = 512, nz: int = 8, nt: int = 89, seed: int = 0) -> Study:
    rng = np.random.default_rng(seed)
    frames = rng.normal(35.0, 10.0, (n, n, nz, nt)).astype(np.float32)
    return Study(frames, np.diag([250 / n, 250 / n, 5.0, 1.0]), np.arange(nt) * 0.5)


def model(widths, n_frames: int, matrix: int) -> LoadedModel:
    """An untrained model recorded as trained on ``matrix`` x ``matrix`` slices of 250 mm."""
    torch.manual_seed(0)
    net = UNet(n_frames, features=widths).eval()
    meta = {
        "target": "cbv",
        "n_frames": n_frames,
        "value_range": [0.0, 10.0],
        "frame_times_s": [],
        "pixel_mm": [250 / matrix, 250 / matrix],
    }
    return LoadedModel(net, meta, path=Path(f"bench-{widths[0]}-{matrix}"))


def bench_inference(name: str, study: Study, repeats: int) -> dict[int, float]:
    """Best time per map for a model of 512 and of 128 training slices."""
    best = {}
    mask = np.ones(study.shape, bool)  # brain-weighted up-sampling, as with a real mask
    for matrix in (512, 128):
        m = model(WIDTHS[name], study.n_frames, matrix)
        best[matrix] = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            predict_map(study, m, mask=mask, device="cpu", batch=2 if name == "paper" else 8)
            best[matrix] = min(best[matrix], time.perf_counter() - t0)
        print(
            f"inference {name:5s} ({count_parameters(m.net) / 1e6:5.2f} M parameters), model "
            f"of {matrix} x {matrix}: {best[matrix]:7.2f} s per map of a 512 x 512 x 8 study "
            f"(89 frames), {3 * best[matrix]:7.2f} s for CBV+CBF+TTP",
            flush=True,
        )
    print(f"  resampled to 128 / native 512: {best[128] / best[512]:.3f}", flush=True)
    return best


def bench_training(name: str, steps: int, size: int = 128, batch: int = 8, nt: int = 89) -> float:
    torch.manual_seed(0)
    net = UNet(nt, features=WIDTHS[name]).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-5)
    x, y = torch.randn(batch, nt, size, size), torch.rand(batch, 1, size, size)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    rate = batch / float(np.median(times[1:]))
    print(
        f"training  {name:5s}: {rate:7.2f} slices/s at {size} x {size}, batch {batch}, "
        f"{nt} frames ({float(np.median(times[1:])):.2f} s per step)",
        flush=True,
    )
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["demo", "small", "paper"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="training steps timed")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine(), flush=True)
    study = synthetic_study()
    for name in args.presets:
        bench_inference(name, study, 1 if name == "paper" else args.repeats)
    for name in args.presets:
        bench_training(name, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
