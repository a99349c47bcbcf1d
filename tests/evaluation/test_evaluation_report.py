"""The evaluation page and the table files: written, parseable, complete, from the results."""

from __future__ import annotations

import base64
import csv
import json
from html.parser import HTMLParser

import pytest
from synthetic_cohort import CBF_RANGE

from ctpmaps.evaluation import evaluate_cohort
from ctpmaps.io.tables import write_tables
from ctpmaps.report.evaluation import render_evaluation_html, write_evaluation_report


class _Page(HTMLParser):
    """Ids, images and table cells of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.images: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a["src"])
        self._in_cell = tag == "td"

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data)

    def handle_endtag(self, tag):
        self._in_cell = False


@pytest.fixture(scope="module")
def evaluation(patients):
    return evaluate_cohort(patients, reference="truth", value_ranges={"cbf": CBF_RANGE})


def test_page_has_every_table_and_figure(evaluation, tmp_path):
    path = write_evaluation_report(evaluation, tmp_path / "evaluation.html", provenance={"v": "x"})
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    for name in evaluation.tables:
        assert f"table-{name}" in page.ids, name
    for lesion in ("core", "hypoperfusion", "penumbra"):
        if any(r["lesion"] == lesion for r in evaluation.tables["volume_agreement"]):
            assert {f"figure-bland-altman-{lesion}", f"figure-scatter-{lesion}"} <= page.ids
    assert {"figure-maps", "figure-dice", "figure-volumes-core"} <= page.ids
    assert page.images and all(s.startswith("data:image/png;base64,") for s in page.images)
    for src in page.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # numbers shown come from the tables
    row = next(r for r in evaluation.tables["dice"] if r["lesion"] == "core")
    assert f"{row['dice_mean']:.4g}" in page.cells
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_page_rebuilds_from_the_saved_json(evaluation, tmp_path):
    written = write_tables(evaluation.tables, tmp_path, metadata=evaluation.settings)
    saved = json.loads(written["json"].read_text())
    again = {"settings": saved["metadata"], "captions": evaluation.captions, **saved}
    assert "table-volume_agreement" in render_evaluation_html(again)


def test_tables_are_strict_json_and_csv(evaluation, tmp_path):
    written = write_tables(evaluation.tables, tmp_path, metadata=evaluation.settings)
    assert set(written) == set(evaluation.tables) | {"json"}

    def no_nan(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    data = json.loads(written["json"].read_text(), parse_constant=no_nan)
    assert data["metadata"]["reference"] == "truth"
    dice_rows = evaluation.tables["dice"]
    assert data["tables"]["dice"][0]["dice_mean"] == pytest.approx(dice_rows[0]["dice_mean"])
    with written["volumes"].open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(evaluation.tables["volumes"])
    first = evaluation.tables["volumes"][0]
    assert float(rows[0]["volume_ml"]) == pytest.approx(first["volume_ml"])
    with written["maps"].open(newline="") as fh:
        cnn = next(r for r in csv.DictReader(fh) if r["source"] == "cnn")
    assert cnn["psnr_brain_db"] == ""  # infinite PSNR of a perfect map: an empty cell
