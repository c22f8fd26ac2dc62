"""The stage contract and the guard every actor pool runs its stage under."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from vidray.stages.base import Batch, Guarded, Pool, Row, Stage, to_rows


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


def test_a_stage_that_cannot_set_up_is_a_job_error_not_a_video_error() -> None:
    with pytest.raises(OSError, match="model file truncated"):
        Guarded("embed", WontLoad, (None,))(pa.Table.from_pylist([{"video_id": "a"}]))


class FailingWrite(Stage):
    guarded = False  # as the sink: a failed write must fail the batch, for Ray to retry

    def __call__(self, batch: Batch) -> pa.Table:
        raise OSError("slow down")


def test_a_pool_runs_its_stages_in_order_and_lets_an_unguarded_one_raise() -> None:
    rows = [{"video_id": "a"}, {"video_id": "bad"}]
    out = Pool(("label", BatchBreaks, (None,)), ("shots", BatchBreaks, (None,)))(rows).to_pylist()
    assert out[0]["done"] and out[1]["error_stage"] == "label"
    with pytest.raises(OSError, match="slow down"):
        Pool(("label", BatchBreaks, (None,)), ("sink", FailingWrite, (None,)))(rows)


def test_rows_that_already_failed_pass_through() -> None:
    rows = [{"video_id": "a", "error": "earlier", "error_stage": "decode"}, {"video_id": "b"}]
    out = Guarded("label", BatchBreaks, (None,))(rows).to_pylist()
    assert out[0]["error_stage"] == "decode" and out[1]["done"]
