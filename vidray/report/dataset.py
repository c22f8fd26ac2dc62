"""The dataset half of the report: overview, charts, label associations, gallery, timelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vidray.progress import Progress
from vidray.report import charts
from vidray.report.gallery import CHUNK, write_gallery, write_label_index, write_script
from vidray.report.html import cards, figure, section, table
from vidray.report.scan import FrameScan, read_videos, scan_frames
from vidray.report.stats import audio_values, choose_gallery, label_frequency, overview, pmi
from vidray.report.timeline import video_list, write_timelines
from vidray.sink import read_table


def dataset_report(
    root: str, site: Path, gallery: int, endpoint_url: str | None = None
) -> tuple[list[tuple[str, str]], str, dict[str, Any]]:
    """Write the dataset's data files and charts under `site`; return (nav, HTML, summary)."""
    videos = read_videos(root, endpoint_url)
    errors = read_table(root, "errors", endpoint_url=endpoint_url).to_pylist()
    dups = read_table(root, "duplicates", ["dropped_id"], endpoint_url=endpoint_url)
    set_aside = set(dups.column("dropped_id").to_pylist()) if dups.num_rows else set()
    kept = sum(v["frames_kept"] or 0 for v in videos)
    with Progress("report: scanning frames", total=kept or None, unit="frames") as p:
        scan = scan_frames(root, [v["video_id"] for v in videos], endpoint_url, progress=p.update)
    if not videos and not scan.frames and not errors:
        raise ValueError(f"{root} holds no vidray tables: build one with `vidray build`")
    over = overview(videos, errors, scan, len(set_aside))
    freq = label_frequency(scan)
    assoc = pmi(scan)
    chart_dir = site / "charts"
    chart_dir.mkdir(parents=True, exist_ok=True)
    charts.label_frequency_chart(freq, chart_dir / "label_frequency.png")
    charts.histograms_chart(
        [
            ("labels per frame", scan.labels_per_frame(), "labels"),
            ("kept frames per video", scan.frames_per_video(), "frames"),
            ("video duration", [(v["duration_s"] or 0) / 60 for v in videos], "minutes"),
        ],
        chart_dir / "distributions.png",
    )
    charts.audio_chart(audio_values(videos), chart_dir / "audio.png")
    heat = charts.pmi_heatmap(assoc, chart_dir / "pmi_heatmap.png")

    chosen = choose_gallery(scan, gallery)
    with Progress("report: gallery thumbnails", total=len(chosen), unit="frames") as p:
        made = write_gallery(
            root, site, scan, chosen, endpoint_url, lambda n, bad: p.update(n, errors=bad)
        )
    order = np.argsort(-scan.counts, kind="stable")
    write_script(
        site / "data" / "labels.js", "labels", write_label_index(site, scan, chosen, order)
    )
    write_script(site / "data" / "videos.js", "videos", video_list(videos, scan))
    with Progress("report: timelines", total=len(scan.video_ids), unit="videos") as p:
        write_timelines(
            root, site, scan, chosen, made["without_thumbnail"], set_aside, endpoint_url, p.update
        )
    write_script(
        site / "data" / "dataset.js",
        "dataset",
        {
            "root": root,
            "gallery": len(chosen),
            "chunk": CHUNK,
            "frames": scan.frames,
            "videos": len(scan.video_ids),
            "associates": assoc["associates"],
        },
    )
    summary = {
        "root": root,
        "videos": over["videos"],
        "frames": scan.frames,
        "gallery": len(chosen),
        "labels": over["labels"],
        "errors": over["errors"],
        "without_thumbnail": len(made["without_thumbnail"]),
        "overview": over,
    }
    nav = [
        ("overview", "Overview"),
        ("labels", "Labels"),
        ("associations", "Associations"),
        ("gallery", "Gallery"),
        ("videos", "Videos"),
    ]
    body = (
        _overview_html(root, over)
        + _labels_html(over, freq)
        + _associations_html(assoc, heat)
        + _gallery_html(scan, len(chosen), gallery)
        + section("videos", "Videos", '<div id="video-table"></div><div id="timeline"></div>')
    )
    return nav, body, summary


def _overview_html(root: str, over: dict[str, Any]) -> str:
    head = cards(
        [
            ("videos", over["videos"]),
            ("hours of video", over["hours"]),
            ("frames sampled", over["frames_sampled"]),
            ("frames kept", over["frames_kept"]),
            ("duplicate ratio", f"{over['duplicate_ratio']:.1%}"),
            ("labels", over["labels"]),
            ("errors", over["errors"]),
        ]
    )
    aside = over["cross_video_duplicates"]
    lines = (
        f"<p>Dataset <code>{root}</code>. {over['frames_labelled']:,} kept frames carry at least "
        f"one label; {over['duplicates_merged']:,} sampled frames were merged into a kept "
        "near-duplicate of the same video"
        + (
            f"; {aside:,} kept frames are set aside as near-duplicates across videos"
            if aside
            else ""
        )
        + f". {over['videos_without_audio']:,} videos have no audio track.</p>"
    )
    tables = (
        '<div class="tables">'
        + _counts("Errors by stage", "stage", over["errors_by_stage"])
        + _counts(
            "Errors by stage and reason",
            "stage / reason",
            [[" / ".join(k), n] for k, n in over["errors_by_reason"]],
        )
        + _counts("Sources", "source", over["sources"])
        + _counts("Licenses", "license", over["licenses"])
        + _counts("Languages", "language", over["languages"])
        + _counts("Speech recognition", "backend", over["asr_backends"])
        + "</div>"
    )
    return section("overview", "Overview", head + lines + tables)


def _counts(title: str, what: str, rows: list[list[Any]], limit: int = 25) -> str:
    body = table([what, "videos"], rows[:limit]) if rows else '<p class="note">none</p>'
    more = f'<p class="note">and {len(rows) - limit} more</p>' if len(rows) > limit else ""
    return f'<div class="counts"><h3>{title}</h3>{body}{more}</div>'


def _labels_html(over: dict[str, Any], freq: dict[str, Any]) -> str:
    body = (
        figure(
            "charts/label_frequency.png", "label frequency: the top labels and the long tail", True
        )
        + figure(
            "charts/distributions.png", "labels per frame, frames per video, video durations", True
        )
        + figure("charts/audio.png", "audio statistics of the videos (stages/audio_stats.py)", True)
    )
    note = (
        f"{over['labels']:,} distinct labels, {over['label_occurrences']:,} label occurrences on "
        f"{over['frames_kept']:,} kept frames."
    )
    return section("labels", "Labels and distributions", body, note)


def _associations_html(assoc: dict[str, Any], heat: bool) -> str:
    pairs = table(
        ["label", "label", "PMI", "NPMI", "frames together"],
        [[p["a"], p["b"], p["pmi"], p["npmi"], p["frames"]] for p in assoc["pairs"][:40]],
    )
    picker = (
        '<div class="assoc"><label>Labels that go with <select id="assoc-label"></select></label>'
        '<div id="assoc-table"></div></div>'
    )
    note = (
        "Pointwise mutual information of two labels on the same frames, "
        "log p(a, b) / (p(a) p(b)): above 0, they appear together more often than chance. "
        f"Pairs on fewer than {assoc['min_count']} frames are left out."
    )
    body = (
        (
            figure("charts/pmi_heatmap.png", "normalised PMI of the most frequent labels")
            if heat
            else ""
        )
        + picker
        + "<h3>Strongest pairs</h3>"
        + (pairs if assoc["pairs"] else '<p class="note">no pair is frequent enough</p>')
    )
    return section("associations", "Word associations", body, note)


def _gallery_html(scan: FrameScan, shown: int, limit: int) -> str:
    note = (
        f"{shown:,} of {scan.frames:,} kept frames"
        + (f" (at most {limit:,}, evenly spaced over the videos)" if shown < scan.frames else "")
        + ", with their labels (best first) and the words said around them."
    )
    controls = (
        '<div class="controls"><input id="label-filter" list="label-names" '
        'placeholder="filter by label…" autocomplete="off"><datalist id="label-names"></datalist>'
        '<button id="clear-filter" type="button">all frames</button>'
        '<span class="pager"><button id="prev" type="button">‹ previous</button>'
        '<span id="page-info"></span><button id="next" type="button">next ›</button></span></div>'
    )
    return section("gallery", "Gallery", controls + '<div id="grid" class="grid"></div>', note)
