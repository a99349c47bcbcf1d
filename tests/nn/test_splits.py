"""Patient-wise splits: held-out test set, k folds, reproducible, written and checked."""

from __future__ import annotations

import json

import pytest

from ctpmaps.errors import InputError
from ctpmaps.nn.splits import check_splits, make_splits, read_splits, write_splits

IDS = [f"MOL-{i:03d}" for i in range(1, 116)]


def test_seed_cohort_keeps_15_of_115_and_three_folds():
    s = make_splits(IDS, k=3, seed=0)
    assert len(s["test"]) == 15
    assert sorted(len(f["val"]) for f in s["folds"]) == [33, 33, 34]
    rest = set(IDS) - set(s["test"])
    for f in s["folds"]:
        assert set(f["train"]) | set(f["val"]) == rest
        assert not set(f["train"]) & set(f["val"])
    assert set().union(*(set(f["val"]) for f in s["folds"])) == rest


def test_reproducible_and_order_free():
    a = make_splits(IDS, seed=7)
    assert make_splits(list(reversed(IDS)), seed=7) == a
    assert make_splits(IDS, seed=8)["test"] != a["test"]


@pytest.mark.parametrize(("n", "n_test"), [(4, 1), (10, 1), (30, 4), (60, 8)])
def test_fraction_for_other_sizes(n, n_test):
    assert len(make_splits(IDS[:n])["test"]) == n_test


def test_too_few_patients_and_bad_arguments():
    with pytest.raises(InputError, match="at least 4"):
        make_splits(IDS[:3])
    with pytest.raises(InputError, match="k >= 1"):
        make_splits(IDS, k=0)
    with pytest.raises(InputError, match="duplicates"):
        make_splits(["a", "a", "b", "c", "d"])
    with pytest.raises(InputError, match="test_fraction"):
        make_splits(IDS, test_fraction=1.0)


def test_written_file_round_trips_and_leaks_are_refused(tmp_path):
    s = make_splits(IDS[:30], seed=1)
    path = write_splits(tmp_path / "splits.json", s)
    assert read_splits(path) == s
    bad = json.loads(path.read_text())
    bad["folds"][0]["train"].append(bad["folds"][0]["val"][0])  # one patient in both
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError, match="splits.json: fold 0"):
        read_splits(path)
    bad = make_splits(IDS[:30], seed=1)
    bad["folds"][1]["val"].append(bad["test"][0])
    with pytest.raises(InputError):
        check_splits(bad)


def test_single_split_validates_a_third_of_the_rest():
    s = make_splits(IDS[:60], k=1, test_fraction=0.25, seed=3)
    (fold,) = s["folds"]
    assert len(s["test"]) == 15 and len(fold["val"]) == 15 and len(fold["train"]) == 30
    assert not set(fold["val"]) & set(fold["train"]) and not set(s["test"]) & set(fold["val"])
    assert sorted(s["test"] + fold["val"] + fold["train"]) == sorted(IDS[:60])
    check_splits(s)
    with pytest.raises(InputError, match="at least 3"):
        make_splits(IDS[:2], k=1)
