"""The stage contract and the guard every actor pool runs its stage under."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from vidray.stages.base import Batch, Guarded, Row, Stage, to_rows


class BatchBreaks(Stage):
    """Per-video work succeeds, but the batch code raises whenever video `bad` is in it."""

    name = "breaks"

    def process(self, row: Row) -> Row:
        return {**row, "done": True}

    def __call__(self, batch: Batch) -> pa.Table:
        if any(r["video_id"] == "bad" for r in to_rows(batch)):
            raise RuntimeError("batch code broke")
        return super().__call__(batch)


class WontLoad(Stage):
    name = "wont_load"

    def setup(self) -> None:
        raise OSError("model file truncated")


def test_a_raising_batch_is_retried_video_by_video() -> None:
    rows: list[dict[str, Any]] = [{"video_id": v} for v in ("a", "bad", "c")]
    out = Guarded("label", BatchBreaks, (None,))(rows).to_pylist()
    assert [r["video_id"] for r in out] == ["a", "bad", "c"]
    assert out[0]["done"] and out[2]["done"] and not out[0]["error"]
    assert out[1]["error_stage"] == "label" and out[1]["error"] == "batch code broke"
    assert out[1]["error_type"] == "RuntimeError"


def test_a_stage_that_cannot_set_up_fails_its_videos_not_the_build() -> None:
    out = Guarded("embed", WontLoad, (None,))(pa.Table.from_pylist([{"video_id": "a"}]))
    assert out.to_pylist()[0]["error"] == "model file truncated"
    assert out.to_pylist()[0]["error_stage"] == "embed"


def test_rows_that_already_failed_pass_through() -> None:
    rows = [{"video_id": "a", "error": "earlier", "error_stage": "decode"}, {"video_id": "b"}]
    out = Guarded("label", BatchBreaks, (None,))(rows).to_pylist()
    assert out[0]["error_stage"] == "decode" and out[1]["done"]
