"""A small synthetic cohort with known overlaps, volumes and map errors."""

from __future__ import annotations

import numpy as np

from ctpmaps.evaluation import PatientData, SourceData

SHAPE = (12, 12, 3)
VOXEL_ML = 0.1
#: CBF range put on [0, 1] (the U-Net's target range for CBF).
CBF_RANGE = (0.0, 150.0)
#: Offset of the "nlr" CBF inside the brain, mL/100 g/min: 0.1 on the normalised scale.
NLR_CBF_OFFSET = 15.0
#: Per patient: (voxels of the reference core, of the nlr core inside it, nlr core voxels
#: outside it); hypoperfusion is the core plus 60 voxels on every source.
CASES = {
    "p0": (40, 30, 10),
    "p1": (50, 50, 0),
    "p2": (30, 20, 20),
    "p3": (0, 0, 0),  # hypoperfusion without core: out of the core Dice only
    "p4": None,  # normal perfusion: out of every Dice and of the volume statistics
}


def _pick(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(pool, size=n, replace=False)


def _masks(case, brain_idx, rng):
    """Flat masks of truth (reference), cnn (= truth) and nlr with known core overlap."""
    size = brain_idx.size
    if case is None:
        empty = np.zeros(SHAPE, bool)
        return {s: {"core": empty, "hypoperfusion": empty} for s in ("truth", "cnn", "nlr")}
    n_ref, n_in, n_out = case
    order = rng.permutation(brain_idx)
    core_t, hypo_extra, rest = order[:n_ref], order[n_ref : n_ref + 60], order[n_ref + 60 :]
    core_n = np.concatenate([_pick(core_t, n_in, rng), rest[:n_out]])
    assert rest.size >= n_out and size > n_ref + 60

    def mask(flat):
        m = np.zeros(np.prod(SHAPE), bool)
        m[flat] = True
        return m.reshape(SHAPE)

    truth = {"core": mask(core_t), "hypoperfusion": mask(np.concatenate([core_t, hypo_extra]))}
    nlr = {"core": mask(core_n), "hypoperfusion": mask(np.concatenate([core_n, hypo_extra]))}
    return {"truth": truth, "cnn": dict(truth), "nlr": nlr}


def make_patient(name: str, seed: int) -> PatientData:
    rng = np.random.default_rng(seed)
    brain = np.zeros(SHAPE, bool)
    brain[2:10, 2:10, :] = True
    cbf_true = np.where(brain, rng.uniform(10.0, 100.0, SHAPE), 0.0).astype(np.float32)
    cbf_nlr = np.where(brain, cbf_true + NLR_CBF_OFFSET, np.nan).astype(np.float32)
    masks = _masks(CASES[name], np.flatnonzero(brain), rng)
    sources = {
        "truth": SourceData(maps={"cbf": cbf_true}, masks=masks["truth"]),
        "nlr": SourceData(maps={"cbf": cbf_nlr}, masks=masks["nlr"]),
        "cnn": SourceData(maps={"cbf": cbf_true.copy()}, masks=masks["cnn"]),
    }
    return PatientData(name, brain, VOXEL_ML, sources)
