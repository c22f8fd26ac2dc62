"""The stage contract: a callable over a batch of video rows, where a failing video becomes data."""

from __future__ import annotations

import logging
import traceback
from typing import Any, TypeAlias

import pyarrow as pa

Row = dict[str, Any]
Batch: TypeAlias = pa.Table | dict[str, list[Any]] | list[Row]

log = logging.getLogger(__name__)


def to_rows(batch: Batch) -> list[Row]:
    """Any batch form Ray or a test hands over → a list of row dicts."""
    if isinstance(batch, pa.Table):
        return batch.to_pylist()
    if isinstance(batch, dict):
        names: list[str] = list(batch)
        n = len(batch[names[0]]) if names else 0
        return [{k: _plain(batch[k][i]) for k in names} for i in range(n)]
    return list(batch)


def rows_to_table(rows: list[Row]) -> pa.Table:
    """Rows with possibly different keys (failed rows carry fewer) → one table."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    return pa.Table.from_pylist([{k: row.get(k) for k in names} for row in rows])


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


class VideoError(Exception):
    """A per-video failure with a reason category (`not_found`, `corrupt`, `timeout`, ...)."""

    def __init__(self, reason: str, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.reason = reason
        self.attempts = attempts


class Stage:
    """Cheap `__init__(cfg)`; `setup()` loads heavy things once per actor; `process(row) -> row`.

    A row that already carries an `error` passes through untouched, and an exception while
    processing a row marks that row with the stage, error type and message: one bad video
    never stops the batch, and the sink routes it to the `errors/` table.
    """

    name = "stage"

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self._ready = False

    def setup(self) -> None:
        """Load models and other heavy resources; called once, before the first row."""

    def process(self, row: Row) -> Row:
        raise NotImplementedError

    def __call__(self, batch: Batch) -> pa.Table:
        if not self._ready:
            self.setup()
            self._ready = True
        return rows_to_table([self.safe_process(row) for row in to_rows(batch)])

    def safe_process(self, row: Row) -> Row:
        if row.get("error"):
            return row
        try:
            return self.process(row)
        except Exception as exc:
            log.warning("%s failed on %s: %s", self.name, row.get("video_id"), exc)
            log.debug("%s", traceback.format_exc())
            return failed(row, self.name, exc)


class Chain:
    """Stages run one after another in the same actor: fetch and decode share a node's
    scratch disk, so a downloaded file is decoded where it was written."""

    def __init__(self, *specs: tuple[Any, tuple[Any, ...]]) -> None:
        self.stages = [cls(*args) for cls, args in specs]

    def __call__(self, batch: Batch) -> pa.Table:
        for stage in self.stages:
            batch = stage(batch)
        return as_table(batch)


class Guarded:
    """A stage as a pool's actor runs it: a batch that raises past the stage's own per-video
    handling (a bug in batch code) is retried video by video, and a video that still raises
    becomes an error row at stage `name`, so one video never fails its batch. A stage whose
    `setup()` fails (a model that will not load) raises instead: that is the job's fault, and
    Ray's retries and errored-block limit stop the build."""

    def __init__(self, name: str, cls: Any, args: tuple[Any, ...]) -> None:
        self.name = name
        self.stage = cls(*args)

    def __call__(self, batch: Batch) -> pa.Table:
        set_up(self.stage)  # a stage that cannot load is a job error: raise, never per video
        try:
            return as_table(self.stage(batch))
        except Exception as exc:
            rows = to_rows(batch)
            log.warning("%s failed on a batch of %d videos: %s", self.name, len(rows), exc)
            if len(rows) == 1:
                return rows_to_table([failed(rows[0], self.name, exc)])
        out: list[Row] = []
        for row in rows:
            if row.get("error"):  # failed at an earlier stage: keep that error
                out.append(row)
                continue
            try:
                out += to_rows(self.stage([row]))
            except Exception as exc:
                log.debug("%s", traceback.format_exc())
                out.append(failed(row, self.name, exc))
        return rows_to_table(out)


class Pool(Chain):
    """What each actor of a pool runs: consecutive stages that share their resources, one
    after another in the same process, each under `Guarded` (unless its class sets `guarded =
    False`). Fewer pools mean fewer worker processes and object store hops per video."""

    def __init__(self, *stages: tuple[str, Any, tuple[Any, ...]]) -> None:
        self.stages = [
            Guarded(name, cls, args) if getattr(cls, "guarded", True) else cls(*args)
            for name, cls, args in stages
        ]


def set_up(stage: Any) -> None:
    """Run the `setup()` of a stage, or of each stage of a `Chain`, if not done yet."""
    for part in getattr(stage, "stages", [stage]):
        if isinstance(part, Stage) and not part._ready:
            part.setup()
            part._ready = True


def as_table(batch: Batch) -> pa.Table:
    return batch if isinstance(batch, pa.Table) else rows_to_table(to_rows(batch))


def failed(row: Row, stage: str, exc: BaseException | str, error_type: str | None = None) -> Row:
    """Mark `row` as failed at `stage`; heavy payload columns are dropped from it."""
    keep = {k: row.get(k) for k in ("video_id", "source", "url", "extra")}
    message = str(exc) if str(exc) else type(exc).__name__
    kind = error_type or (type(exc).__name__ if isinstance(exc, BaseException) else "Error")
    return {
        **keep,
        "error": message[:2000],
        "error_stage": stage,
        "error_type": kind,
        "error_reason": getattr(exc, "reason", None) or "error",
        "attempts": getattr(exc, "attempts", 1),
    }
