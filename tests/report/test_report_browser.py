"""`vidray report` as a person sees it: the site opens from disk in headless Chromium with no
console errors, every image and chart renders, and the gallery pages, filters by label and
opens a video's timeline. Screenshots are saved in the test artifacts folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidray.cli import main
from vidray.testing.browser import artifact_dir, open_page
from vidray.testing.frames import write_frames_dataset

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def site(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of 96 labelled frames (two gallery pages) and of a tiny trained model."""
    base = tmp_path_factory.mktemp("report")
    write_frames_dataset(base / "dataset", videos_per_word=3, frames_per_video=8)
    out = base / "site"
    code = main(
        [
            "report",
            str(base / "dataset"),
            "--model-dir",
            str(tiny_model_dir),
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    return out


def test_the_report_renders_and_answers_clicks(site: Path) -> None:
    shots = artifact_dir()
    with open_page(site / "index.html", height=1000) as checked:
        page = checked.page
        page.wait_for_selector("#grid figure")
        assert page.locator("#grid figure").count() == 60  # the first of two pages
        assert "page 1 of 2" in page.inner_text("#page-info")
        first = checked.report(screenshot=shots / "report-overview.png")
        assert first.ok, first.problems
        # Charts (PNG) of the dataset and the model, thumbnails, and the SVG timeline.
        assert first.images >= 60 + 6 and first.svgs >= 1
        assert page.locator("svg.timeline circle").count() == 8  # the first video's frames

        page.click("#next")
        page.wait_for_function(
            "document.querySelector('#page-info').textContent.includes('page 2')"
        )
        assert page.locator("#grid figure").count() == 36

        page.fill("#label-filter", "lemon")
        page.dispatch_event("#label-filter", "change")
        page.wait_for_function("document.querySelector('#page-info').textContent.includes('lemon')")
        cards = page.locator("#grid figure")
        assert cards.count() == 24
        assert all("lemon" in cards.nth(i).inner_text() for i in range(cards.count()))

        page.locator("#video-table a").nth(5).click()
        page.wait_for_function(
            "document.querySelector('#timeline h3').textContent.includes('lemon-2')"
        )
        after = checked.report(screenshot=shots / "report-filtered.png")
        assert after.ok, after.problems
    for name in ("report-overview.png", "report-filtered.png"):
        assert (shots / name).stat().st_size > 20_000


def test_the_model_section_holds_its_figures(site: Path) -> None:
    html = (site / "index.html").read_text()
    for anchor in ("training", "evaluation", "predictions", "weights"):
        assert f'id="{anchor}"' in html
    for png in ("spectra.png", "topk.png"):
        assert (site / "model" / png).stat().st_size > 5000
    analysis = json.loads((site / "model" / "weights.json").read_text())
    assert analysis["matrices"] and analysis["layers"]
    assert len(list((site / "model").glob("example_*.jpg"))) >= 1


def test_a_model_only_report_opens_cleanly(tiny_model_dir: Path, tmp_path: Path) -> None:
    from vidray.report import write_report

    summary = write_report(tmp_path / "site", model_dir=tiny_model_dir)
    assert "dataset" not in summary and summary["model"]["evaluated"]
    with open_page(summary["index"]) as checked:
        report = checked.report()
        assert report.ok, report.problems
        assert report.images >= 6 and not checked.page.locator("#gallery").count()
