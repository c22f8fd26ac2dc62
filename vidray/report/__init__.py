"""HTML reports of a dataset and of a trained model: `vidray report` writes a static site (a
folder with index.html that opens from disk or any static host, no server needed)."""

from __future__ import annotations

import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

from vidray.report.html import page

ASSETS = ("app.js", "style.css")


def default_out(root: str | None, model_dir: str | None) -> Path:
    """ROOT/report for a local dataset, else MODEL_DIR/report."""
    if root and "://" not in root:
        return Path(root) / "report"
    if model_dir:
        return Path(model_dir) / "report"
    raise ValueError(f"{root} is not a local folder: pass --out DIR for the report")


def write_report(
    out: str | Path | None,
    root: str | None = None,
    model_dir: str | Path | None = None,
    gallery: int = 50_000,
    endpoint_url: str | None = None,
) -> dict[str, Any]:
    """Write the report of a dataset `root`, a model directory, or both, into `out`; return a
    summary (where it is, counts) for the command line."""
    start = time.perf_counter()
    if not root and not model_dir:
        raise ValueError("give a dataset root, a model directory, or both")
    if model_dir and not (Path(model_dir) / "model.pt").is_file():
        raise FileNotFoundError(f"{model_dir} holds no model.pt: train one with `vidray train`")
    site = Path(out) if out else default_out(root, str(model_dir) if model_dir else None)
    for stale in ("data", "thumbs", "charts", "model"):
        shutil.rmtree(site / stale, ignore_errors=True)  # a previous report's files
    (site / "assets").mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        source = resources.files("vidray.report").joinpath("assets", name)
        (site / "assets" / name).write_bytes(source.read_bytes())
    nav: list[tuple[str, str]] = []
    body, scripts = "", []
    summary: dict[str, Any] = {"out": str(site), "index": str(site / "index.html")}
    if root:
        from vidray.report.dataset import dataset_report

        part_nav, part, summary["dataset"] = dataset_report(root, site, gallery, endpoint_url)
        nav, body = nav + part_nav, body + part
        scripts.append("data/dataset.js")
    if model_dir:
        from vidray.report.model import model_report

        part_nav, part, summary["model"] = model_report(Path(model_dir), site)
        nav, body = nav + part_nav, body + part
    name = Path(root.rstrip("/")).name if root else Path(model_dir or ".").resolve().name
    title = f"vidray report: {name}"
    (site / "index.html").write_text(
        page(title, nav, body, ["assets/app.js", *scripts]), encoding="utf-8"
    )
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary
