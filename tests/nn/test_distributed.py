"""DistributedDataParallel with torchrun: two CPU processes (gloo), a tiny model, one epoch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

from ctpmaps.nn.weights import load_model


def test_torchrun_two_processes_on_cpu(tiny_cohort, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "ctpmaps", "train", str(tiny_cohort), str(out),
        "--target", "cbf", "--target-source", "truth", "--features", "4,4,4,8,8",
        "--frames", "4", "--epochs-pre", "0", "--epochs-fine", "1", "--batch", "4",
        "--lr", "1e-3", "--folds", "2", "--device", "cpu", "--threads", "1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    net, meta = load_model(out / "cbf")
    assert meta["target"] == "cbf" and meta["n_frames"] == 4
    for i in range(2):
        rows = list(csv.DictReader(open(out / f"fold-{i}" / "history.csv")))
        assert len(rows) == 1 and float(rows[0]["train_mse"]) > 0
    assert "process 0 of 2" in proc.stderr and "process 1 of 2" in proc.stderr
    assert "test (1 patients)" in proc.stdout  # printed once, by rank 0
    assert proc.stdout.count("model:") == 1
