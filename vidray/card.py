"""The dataset card: ROOT/README.md with Hugging Face front matter, regenerated from the tables.

Everything in it is counted from the committed tables (streamed column by column, never the
image column), so the card is right after a resume as after a single run. The front matter's
`configs` make `datasets.load_dataset(ROOT, "frames")` find the tables.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pyarrow.compute as pc
import yaml

from vidray.config import BuildConfig, to_dict
from vidray.schema import TABLES
from vidray.sink import iter_batches, read_table, table_files
from vidray.storage import open_root, put_bytes, redact_url

SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|credential|api_?key|access_?key)")
TOP_LABELS = 25
VIDEO_COLUMNS = [
    "video_id",
    "extractor",
    "license",
    "asr_backend",
    "asr_model",
    "language",
    "duration_s",
    "frames_kept",
]


def redact(value: Any, key: str = "") -> Any:
    """A config dict fit to publish: values of secret-looking keys and the user:password@ and
    query parts of URLs become `***`."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        return "***" if SECRET_KEY.search(key) else redact_url(value)
    return value


def collect(root: str, cfg: BuildConfig) -> dict[str, Any]:
    """Counts over the committed tables, reading only the small columns."""
    where = {"endpoint_url": cfg.output.endpoint_url, "region": cfg.output.region}
    videos = read_table(root, "videos", VIDEO_COLUMNS, **where)
    errors = read_table(root, "errors", ["stage", "reason"], **where)
    labels: Counter[str] = Counter()
    frames = labelled = 0
    for batch in iter_batches(root, "frames", ["labels"], 8192, **where):
        column = batch.column("labels")
        frames += batch.num_rows
        labelled += int(
            pc.sum(pc.greater(pc.fill_null(pc.list_value_length(column), 0), 0)).as_py() or 0
        )
        counts = pc.value_counts(pc.list_flatten(column))
        labels.update(
            dict(zip(counts.field(0).to_pylist(), counts.field(1).to_pylist(), strict=True))
        )
    v = videos.to_pydict()
    kept = np.array([k or 0 for k in v["frames_kept"]], dtype=np.int64)
    return {
        "videos": videos.num_rows,
        "errors": errors.num_rows,
        "frames": frames,
        "labelled_frames": labelled,
        "hours": sum(d or 0.0 for d in v["duration_s"]) / 3600,
        "frames_per_video": {
            "mean": float(kept.mean()) if kept.size else 0.0,
            "median": float(np.median(kept)) if kept.size else 0.0,
            "min": int(kept.min()) if kept.size else 0,
            "max": int(kept.max()) if kept.size else 0,
        },
        "errors_by": Counter(zip(*errors.to_pydict().values(), strict=True)),
        "labels": labels,
        "sources": Counter(str(i).split(":", 1)[0] for i in v["video_id"]),
        "extractors": Counter(v["extractor"]),
        "licenses": Counter(v["license"]),
        "languages": Counter(v["language"]),
        "asr": Counter(zip(v["asr_backend"], v["asr_model"], strict=True)),
    }


def front_matter(tables: list[str]) -> dict[str, Any]:
    configs = []
    for table in tables:
        config: dict[str, Any] = {
            "config_name": table,
            "data_files": [{"split": "train", "path": f"{table}/**/*.parquet"}],
        }
        if table == "frames":
            config["default"] = True
        configs.append(config)
    return {
        "pretty_name": "vidray image-word dataset",
        "tags": ["vidray", "video", "image-text", "speech-recognition"],
        "configs": configs,
    }


def counts_table(title: str, counts: Counter[Any], limit: int = 20) -> list[str]:
    if not counts:
        return []
    lines = [f"| {title} | count |", "| --- | ---: |"]
    for key, n in counts.most_common(limit):
        name = (
            " / ".join("—" if k is None else str(k) for k in key) if isinstance(key, tuple) else key
        )
        lines.append(f"| {'—' if name is None else name} | {n} |")
    if len(counts) > limit:
        lines.append(f"| … {len(counts) - limit} more | |")
    return [*lines, ""]


def render(root: str, cfg: BuildConfig, stats: dict[str, Any], tables: list[str]) -> str:
    out = cfg.output
    shown = redact_url(root)
    per = stats["frames_per_video"]
    body = [
        "---",
        yaml.safe_dump(front_matter(tables), sort_keys=False).rstrip(),
        "---",
        "",
        "# vidray image–word dataset",
        "",
        "Frames of narrated videos labelled with the words spoken around them, built by "
        "`vidray build`. This card is regenerated from the tables at the end of every build.",
        "",
        "| | |",
        "| --- | ---: |",
        f"| videos | {stats['videos']} |",
        f"| errors (videos that could not be processed) | {stats['errors']} |",
        f"| frames | {stats['frames']} |",
        f"| frames with at least one label | {stats['labelled_frames']} |",
        f"| frames per video (mean / median / min / max) | {per['mean']:.1f} / "
        f"{per['median']:g} / {per['min']} / {per['max']} |",
        f"| hours of video | {stats['hours']:.2f} |",
        f"| label vocabulary | {len(stats['labels'])} |",
        f"| pixels | {'JPEG images in frames.image' if out.pixels else 'none: features-only (frames.image is null)'} |",
        f"| partitioned by | {', '.join(out.partition_by) or '—'} |",
        "",
        "## Errors by stage and reason",
        "",
        *(counts_table("stage / reason", stats["errors_by"]) or ["None.", ""]),
        "## Most common labels",
        "",
        *(counts_table("label", stats["labels"], TOP_LABELS) or ["None.", ""]),
        "## Sources",
        "",
        *counts_table("video id kind", stats["sources"]),
        *counts_table("extractor", stats["extractors"]),
        *counts_table("license", stats["licenses"]),
        *counts_table("language", stats["languages"]),
        "## Speech recognition",
        "",
        *(counts_table("backend / model", stats["asr"]) or ["None.", ""]),
        "## Tables",
        "",
        "Each table is a folder of zstd Parquet files carrying the schema below"
        + (
            f"; Hive partition folders `{'=…/'.join(out.partition_by)}=…/` hold frames and videos, "
            "and the partition columns live in the folder names (read them back with a "
            "Hive-aware reader; Hugging Face `datasets` ignores them)."
            if out.partition_by
            else "."
        ),
        "",
    ]
    for table in tables:
        fields = "\n".join(f"{f.name}: {f.type}" for f in TABLES[table])
        body += [f"### {table}", "", "```", fields, "```", ""]
    body += [
        "## Loading",
        "",
        "```python",
        "from vidray.sink import read_table  # committed batches only, declared schema",
        f'frames = read_table("{shown}", "frames", ["frame_id", "labels", "image"])',
        "",
        "from datasets import load_dataset",
        f'frames = load_dataset("{shown}", "frames", split="train")',
        "",
        "import duckdb",
        f"duckdb.sql(\"select * from read_parquet('{shown}/videos/**/*.parquet', hive_partitioning=true)\")",
        "",
        "import ray",
        f'ray.data.read_parquet("{shown}/frames")',
        "",
        "import pandas as pd, pyarrow.dataset as ds  # this flavor reads null partition values",
        f'pd.read_parquet("{shown}/videos", partitioning=ds.partitioning(flavor="hive"))',
        "```",
        "",
        "Each sink batch commits by writing `_parts/<part>.json` (its files and video ids) after "
        "its files; files of batches without one belong to an unfinished run: vidray's readers "
        "skip them and `vidray build --resume` deletes them.",
        "",
        "## Build configuration",
        "",
        "```yaml",
        yaml.safe_dump({"build": redact(to_dict(cfg))}, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(body)


def write_card(root: str, cfg: BuildConfig) -> str:
    """Write ROOT/README.md from the committed tables; return its text."""
    out = cfg.output
    tables = [
        t
        for t in TABLES
        if table_files(root, t, endpoint_url=out.endpoint_url, region=out.region)[1]
    ]
    text = render(root, cfg, collect(root, cfg), tables)
    fs, base = open_root(root, out.endpoint_url, out.region)
    put_bytes(fs, f"{base}/README.md", text.encode())
    return text
