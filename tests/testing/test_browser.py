"""The headless-Chromium checker: a clean static site passes, and each kind of breakage shows."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from vidray.testing.browser import artifact_dir, check_page, chromium_processes, open_page

pytestmark = pytest.mark.timeout(60)

CLEAN = """<!doctype html>
<html><head><meta charset="utf-8"><title>clean</title><script src="data.js"></script></head>
<body>
  <h1>Report</h1>
  <img src="top.png" alt="top">
  <div id="chart"></div>
  <button id="more" onclick="more()">page 2</button>
  <div style="height: 4000px"></div>
  <img src="far.png" alt="far" loading="lazy">
  <script src="draw.js"></script>
</body></html>
"""

DRAW = """
const NS = "http://www.w3.org/2000/svg";
const svg = document.createElementNS(NS, "svg");
svg.setAttribute("width", "120");
svg.setAttribute("height", "60");
DATA.bars.forEach((v, i) => {
  const bar = document.createElementNS(NS, "rect");
  bar.setAttribute("x", i * 40);
  bar.setAttribute("y", 60 - v * 10);
  bar.setAttribute("width", 30);
  bar.setAttribute("height", v * 10);
  svg.appendChild(bar);
});
document.getElementById("chart").appendChild(svg);
function more() {
  const img = document.createElement("img");
  img.src = "top.png";
  img.loading = "lazy";
  document.body.appendChild(img);
}
"""

BROKEN = """<!doctype html>
<html><head><meta charset="utf-8"><title>broken</title></head>
<body>
  <img src="missing.png" alt="missing">
  <img src="https://cdn.example.com/logo.png" alt="off the machine">
  <script>
    fetch("data.json").catch(() => null);
    console.error("deliberate console error");
    throw new Error("deliberate exception");
  </script>
</body></html>
"""


def _site(root: Path) -> Path:
    root.mkdir()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(root / "top.png")
    Image.new("RGB", (50, 20), (0, 90, 200)).save(root / "far.png")  # a file of its own: lazy
    (root / "data.js").write_text("window.DATA = {bars: [3, 1, 4]};\n")
    (root / "draw.js").write_text(DRAW)
    (root / "index.html").write_text(CLEAN)
    (root / "data.json").write_text('{"bars": [3, 1, 4]}\n')
    (root / "broken.html").write_text(BROKEN)
    return root


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return _site(tmp_path / "site")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
        server.shutdown()


def test_clean_site_from_disk(site: Path) -> None:
    shot = artifact_dir() / "browser-clean.png"
    shot.unlink(missing_ok=True)
    with open_page(site) as checked:
        report = checked.report(shot)
        assert report.ok, report.problems
        assert (report.images, report.svgs, report.canvases) == (2, 1, 0)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(shot) as png:
            assert png.height > 4000  # the whole page, down to the lazy image

        checked.page.click("#more")  # an interaction, then a second look
        again = checked.report()
        assert again.ok, again.problems
        assert again.images == 3
    assert not chromium_processes()


def test_broken_page_shows_every_problem(site: Path) -> None:
    report = check_page(site / "broken.html")
    assert not report.ok
    assert any(m.text == "deliberate console error" for m in report.console_errors)
    assert any("deliberate exception" in e for e in report.page_errors)
    failed = {Path(r.url).name: r.reason for r in report.failed_requests}
    assert failed["missing.png"] == "net::ERR_FILE_NOT_FOUND"
    assert failed["logo.png"] == "net::ERR_NAME_NOT_RESOLVED"  # nothing leaves the machine
    assert failed["data.json"] == "net::ERR_FAILED"  # file:// pages cannot fetch(), as for users
    broken = sorted(Path(i.src).name for i in report.broken_images)
    assert broken == ["logo.png", "missing.png"]


def test_served_site_discounts_only_the_favicon(served: str) -> None:
    report = check_page(served)
    assert report.ok, report.problems
    assert all(m.is_browser_noise for m in report.console if m.type == "error")


def test_hung_page_is_killed_at_the_deadline(site: Path) -> None:
    hang = site / "hang.html"
    hang.write_text(
        "<!doctype html><title>hang</title>"
        "<script>addEventListener('load', () => setTimeout(() => { for (;;) {} }, 50));</script>"
    )
    with pytest.raises(TimeoutError), open_page(hang, deadline_s=2) as checked:
        checked.page.wait_for_timeout(200)
        checked.report()
    assert not chromium_processes()
