"""Progress of long work on stderr: a bar redrawn in place, a line now and then for job logs, or
nothing; with the rate and time left from the recent pace, and a JSON-able summary at the end.

    set_mode("auto")   # "bar" | "lines" | "none"; auto: a bar when stderr is a terminal, else none
    with Progress("build", total=120, unit="videos") as p:
        p.update(1)              # one more done
        p.update(1, errors=1)    # one more done, and it failed
        p.note("fetched 40")     # short status text at the end of the line
    p.summary()  # {"what", "done", "total", "errors", "seconds", "rate"}

Without `set_mode`, the mode comes from $VIDRAY_PROGRESS (else auto), and "lines" mode writes
at most one line every $VIDRAY_PROGRESS_INTERVAL seconds (default 30) plus one at the end.
"""

from __future__ import annotations

import io
import logging
import math
import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

log = logging.getLogger(__name__)

MODES = ("auto", "bar", "lines", "none")
ENV_MODE = "VIDRAY_PROGRESS"
ENV_INTERVAL = "VIDRAY_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 30.0
REDRAW_S = 0.1  # a bar is redrawn at most 10 times a second
WINDOW_S = 60.0  # the rate is measured over about the last minute

_settings: dict[str, Any] = {"mode": None, "interval_s": None}
_bars: list[Progress] = []  # open bars, newest last: messages are written above them
_bars_lock = threading.Lock()


def set_mode(mode: str, interval_s: float | None = None) -> None:
    """How progress made from now on is shown: "bar", "lines" (one every `interval_s` seconds
    and one at the end), "none", or "auto" (a bar when stderr is a terminal, else none)."""
    check_mode(mode)
    _settings["mode"] = mode
    if interval_s is not None:
        _settings["interval_s"] = float(interval_s)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


def current_mode(stream: TextIO | None = None) -> str:
    """The mode in force for `stream` (default stderr): "bar", "lines" or "none"."""
    mode = check_mode(_settings["mode"] or os.environ.get(ENV_MODE) or "auto")
    if mode == "auto":
        return "bar" if _isatty(stream or sys.stderr) else "none"
    return mode


def lines_interval_s() -> float:
    if _settings["interval_s"] is not None:
        return float(_settings["interval_s"])
    env = os.environ.get(ENV_INTERVAL)
    if not env:
        return DEFAULT_INTERVAL_S
    try:
        return float(env)
    except ValueError:
        raise ValueError(f"{ENV_INTERVAL}={env!r}: give a number of seconds") from None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def fmt_duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fmt_rate(per_s: float, unit: str) -> str:
    if 0 < per_s < 0.1:  # slower than one every 10 s reads better per minute
        return f"{per_s * 60:.2f} {unit}/min"
    if per_s >= 100:
        return f"{per_s:.0f} {unit}/s"
    return f"{per_s:.1f} {unit}/s" if per_s >= 10 else f"{per_s:.2f} {unit}/s"


class Progress:
    """Items done of a total (or of an unknown total), errors among them, and a status note.

    `update` and `note` may be called from any thread. `mode`, `stream`, `clock`, `interval_s`,
    `width` and `refresh_s` default to the process's settings, stderr, `time.monotonic`, the
    "lines" interval, the terminal's width, and a redraw of the bar every second (so a stalled
    bar still shows the time passing; 0 turns that off)."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        unit: str = "items",
        *,
        mode: str | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float | None = None,
        width: int | None = None,
        refresh_s: float = 1.0,
        window_s: float = WINDOW_S,
    ) -> None:
        self.what, self.unit = what, unit
        stream = stream or sys.stderr
        if isinstance(stream, AboveBars):  # a bar is already shown: draw on the real stream
            stream = stream.target()
        self.stream: TextIO = stream
        self.mode = current_mode(self.stream) if mode is None else check_mode(mode)
        if self.mode == "auto":
            self.mode = "bar" if _isatty(self.stream) else "none"
        self.clock = clock
        self.interval_s = lines_interval_s() if interval_s is None else interval_s
        self.width, self.window_s = width, window_s
        self.lock = threading.RLock()
        self.done = self.errors = 0
        self.status = ""
        self._total = total
        self.start = clock()
        self.end: float | None = None
        self.failed = False
        # (time, done) over the last window: the rate is the slope across it
        self.samples: deque[tuple[float, int]] = deque([(self.start, 0)])
        self.origin = True  # samples[0] is the start, not an update
        self.last_draw = -math.inf
        self.last_line = self.start
        self.dirty = False
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._redirect: AboveBars | None = None
        if self.mode == "bar":
            with _bars_lock:
                _bars.append(self)
                if sys.stderr is self.stream:
                    # Other writers to stderr (warnings, Ray's driver logs) print above the
                    # bar instead of into its line, as rich's Live display does.
                    self._redirect = sys.stderr = AboveBars(self.stream)
            if refresh_s > 0:
                self._ticker = threading.Thread(
                    target=self._tick, args=(refresh_s,), name=f"progress-{what}", daemon=True
                )
                self._ticker.start()

    # --- feeding it ---------------------------------------------------------------------------

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        with self.lock:
            self._total = value
            self._show(self.clock())

    def update(self, n: int = 1, errors: int = 0, note: str | None = None) -> None:
        """`n` more items done, `errors` of them failed; `note` replaces the status text."""
        with self.lock:
            self.done += n
            self.errors += errors
            if note is not None:
                self.status = note
            now = self.clock()
            # Updates less than a fiftieth of the window apart share one sample, so a fast
            # stream keeps a short list.
            if len(self.samples) > 1 and now - self.samples[-2][0] < self.window_s / 50:
                self.samples[-1] = (now, self.done)
            else:
                if self.origin and len(self.samples) == 2:
                    # From the second sample on, the pace is measured from the first: the
                    # start-up before it (Ray, models, a pipeline filling) is over.
                    self.samples.popleft()
                    self.origin = False
                self.samples.append((now, self.done))
            self._show(now, line=True)

    def skip(self, n: int) -> None:
        """`n` items done before this run (a resumed one): counted, but not in the rate."""
        with self.lock:
            self.done += n
            self.samples = deque((t, d + n) for t, d in self.samples)
            self._show(self.clock())

    def note(self, text: str) -> None:
        """A short status shown at the end of the line ("" clears it); in "lines" mode it is
        written with the next update's line."""
        with self.lock:
            if text != self.status:
                self.status = text
                self._show(self.clock())

    def write(self, text: str) -> None:
        """A message line on the progress stream, above the bar when there is one."""
        with self.lock:
            if self.mode == "bar" and self.end is None:
                self.stream.write("\r\x1b[K" + text.rstrip("\n") + "\n")
                self._draw(self.clock())
            else:
                self.stream.write(text.rstrip("\n") + "\n")
                self.stream.flush()

    # --- reading it ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        return (self.end if self.end is not None else self.clock()) - self.start

    def rate(self) -> float | None:
        """Items per second over about the last `window_s`; None before the first item."""
        with self.lock:
            now = self.end if self.end is not None else self.clock()
            self._prune(now)
            t0, d0 = self.samples[0]
            if self.done == 0 or now <= t0:
                return None
            return (self.done - d0) / (now - t0)

    def time_left(self) -> float | None:
        """Seconds to the total at the recent rate; None when the total or the rate is unknown."""
        rate = self.rate()
        if self._total is None or not rate:
            return None
        return max(0, self._total - self.done) / rate

    def summary(self) -> dict[str, Any]:
        """{"what", "done", "total", "errors", "seconds", "rate"}: plain JSON-able values."""
        with self.lock:
            seconds = self.elapsed()
            return {
                "what": self.what,
                "done": self.done,
                "total": self._total,
                "errors": self.errors,
                "seconds": round(seconds, 3),
                "rate": round(self.done / seconds, 4) if seconds > 0 else None,
            }

    def line(self, final: bool = False) -> str:
        """The status line: `build  37/120 videos  31% | 0.82 videos/s | 1m41s left | 2 errors`."""
        with self.lock:
            total, done = self._total, self.done
            if total:
                pct = (
                    round(100 * done / total)
                    if done >= total
                    else min(99, round(100 * done / total))
                )
                head = f"{self.what}  {done}/{total} {self.unit}  {pct}%"
            else:
                head = f"{self.what}  {done}{f'/{total}' if total == 0 else ''} {self.unit}"
            parts = [head]
            seconds = self.elapsed()
            rate = (done / seconds if seconds > 0 and done else None) if final else self.rate()
            if rate is not None:
                parts.append(fmt_rate(rate, self.unit))
            if final:
                parts.append(
                    f"{'stopped after' if self.failed else 'done in'} {fmt_duration(seconds)}"
                )
            elif total and (left := self.time_left()) is not None:
                parts.append(f"{fmt_duration(left)} left")
            else:  # no total, or no rate yet: the time so far shows it is alive
                parts.append(f"{fmt_duration(seconds)} elapsed")
            if self.errors:
                parts.append(f"{self.errors} error{'s' if self.errors != 1 else ''}")
            if self.status:
                parts.append(self.status)
            return " | ".join(parts)

    # --- showing it ---------------------------------------------------------------------------

    def close(self, failed: bool = False) -> None:
        """Leave the final line (bar, lines) and stop; closing twice does nothing."""
        with self.lock:
            if self.end is not None:
                return
            self.failed = failed
            self.end = self.clock()
            if self.mode == "bar":
                self._draw(self.end, final=True)
                self.stream.write("\n")
                self.stream.flush()
            elif self.mode == "lines":
                self.stream.write(self.line(final=True) + "\n")
                self.stream.flush()
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        with _bars_lock:
            if self in _bars:
                _bars.remove(self)
            if self._redirect is not None:
                if sys.stderr is self._redirect:
                    sys.stderr = self.stream
                self._redirect.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.close(failed=kind is not None)

    def _prune(self, now: float) -> None:
        # Keep one sample at or before the window's start, so the slope spans the whole window.
        while len(self.samples) > 1 and self.samples[1][0] <= now - self.window_s:
            self.samples.popleft()
            self.origin = False

    def _show(self, now: float, line: bool = False) -> None:
        if self.end is not None:
            return
        if self.mode == "bar":
            if now - self.last_draw >= REDRAW_S:
                self._draw(now)
            else:
                self.dirty = True  # the ticker draws it
        elif self.mode == "lines" and line and now - self.last_line >= self.interval_s:
            self.last_line = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def _draw(self, now: float, final: bool = False) -> None:
        width = self.width or _terminal_width(self.stream)
        text = self.line(final=final)
        if len(text) >= width:
            text = text[: max(1, width - 2)] + "…"
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self.last_draw, self.dirty = now, False

    def _tick(self, every_s: float) -> None:
        step = min(every_s, REDRAW_S * 2)
        while not self._stop.wait(step):
            with self.lock:
                now = self.clock()
                if self.end is None and (self.dirty or now - self.last_draw >= every_s):
                    self._draw(now)


def _terminal_width(stream: Any) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        columns = 0
    return columns if columns >= 20 else shutil.get_terminal_size((100, 24)).columns


def echo(text: str) -> None:
    """A message line on stderr, above the progress bar when one is shown."""
    _above(text, None)


def _above(text: str, fallback: TextIO | None) -> None:
    with _bars_lock:
        bar = _bars[-1] if _bars else None
    if bar is not None:
        bar.write(text)
    else:
        stream = fallback or sys.stderr
        stream.write(text + "\n")
        stream.flush()


class AboveBars(io.TextIOBase):
    """A stderr whose every line is written above the progress bar shown, if any: what a bar
    puts in `sys.stderr` while it is shown, and the stream of the CLI's log handler. `target`
    None writes to `sys.stderr` as it is at the time."""

    def __init__(self, target: TextIO | None = None) -> None:
        self._target = target
        self.pending = ""
        self.lock = threading.Lock()

    def target(self) -> TextIO:
        return self._target or sys.__stderr__ or sys.stderr

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return _isatty(self.target())

    def fileno(self) -> int:
        return self.target().fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target(), "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        with self.lock:
            self.pending += text
            if "\n" not in self.pending:
                return len(text)
            done, self.pending = self.pending.rsplit("\n", 1)
        for line in done.split("\n"):
            _above(line, self._target)
        return len(text)

    def flush(self) -> None:
        with self.lock:
            line, self.pending = self.pending, ""
        if line:
            _above(line, self._target)


def logs_above_bars(*names: str) -> None:
    """Route the stderr handlers of these loggers (e.g. Ray's, which keep the stderr of when
    they were made) through `AboveBars`, so their lines never run into a bar."""
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (
                sys.stderr,
                sys.__stderr__,
            ):
                handler.setStream(AboveBars())


@contextmanager
def polling(fn: Callable[[], None], every_s: float = 1.0) -> Iterator[None]:
    """Call `fn` every `every_s` seconds in a daemon thread while the block runs, and once more
    as it ends (so final counts are shown). A failing call is logged and polling goes on."""
    stop = threading.Event()

    def call() -> None:
        try:
            fn()
        except Exception as exc:  # a progress display must never stop the work it shows
            log.debug("progress poll failed: %s", exc)

    def loop() -> None:
        while not stop.wait(every_s):
            call()

    thread = threading.Thread(target=loop, name="progress-poll", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        call()
