"""Progress on a fake stream and a fake clock (bar, lines, none; rate, time left, threads), and
the CLI's convention: one JSON line on stdout when it is not a terminal, the summary on stderr."""

from __future__ import annotations

import io
import json
import os
import re
import runpy
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vidray import progress
from vidray.progress import AboveBars, Progress, current_mode, echo, polling, set_mode

ROOT = Path(__file__).parents[1]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from the defaults: no set_mode, no $VIDRAY_PROGRESS."""
    monkeypatch.delenv("VIDRAY_PROGRESS", raising=False)
    monkeypatch.delenv("VIDRAY_PROGRESS_INTERVAL", raising=False)
    saved = dict(progress._settings)
    progress._settings.update(mode=None, interval_s=None)
    yield
    progress._settings.update(saved)


def bar(clock: Clock, stream: io.StringIO, **kw: Any) -> Progress:
    return Progress(mode="bar", stream=stream, clock=clock, refresh_s=0, **kw)


def draws(text: str) -> list[str]:
    """The successive states of a line redrawn with \\r ... ESC[K."""
    return re.findall(r"\r([^\r\x1b]*)\x1b\[K", text)


def test_bar_line_rate_and_time_left_on_a_fake_clock() -> None:
    clock, out = Clock(), io.StringIO()
    p = bar(clock, out, what="build", total=120, unit="videos", width=200)
    for i in range(37):
        clock.t += 1 / 0.82
        p.update(1, errors=int(i in (3, 9)))
    assert p.rate() == pytest.approx(0.82)
    assert p.time_left() == pytest.approx(83 / 0.82)
    assert p.line() == "build  37/120 videos  31% | 0.82 videos/s | 1m41s left | 2 errors"
    p.note("fetched 40")
    clock.t += 5
    p.close()
    text = out.getvalue()
    assert text.endswith("\x1b[K\n") and "\n" not in text[:-1]  # one line, redrawn in place
    final = draws(text)[-1]
    # The final line: the average rate over the whole run, and the time it took.
    assert (
        final == "build  37/120 videos  31% | 0.74 videos/s | done in 50s | 2 errors | fetched 40"
    )
    assert p.summary() == {
        "what": "build",
        "done": 37,
        "total": 120,
        "errors": 2,
        "seconds": pytest.approx(50.12, abs=0.01),
        "rate": pytest.approx(37 / 50.12, abs=1e-3),
    }
    json.dumps(p.summary())


def test_bar_redraws_at_most_ten_times_a_second_and_fits_the_width() -> None:
    clock, out = Clock(), io.StringIO()
    with bar(clock, out, what="thumbnails", total=1000, unit="frames", width=40) as p:
        for _ in range(1000):
            clock.t += 0.002  # 500 updates a second for two seconds
            p.update(1)
    states = draws(out.getvalue())
    assert 18 <= len(states) <= 22  # ~10 a second, plus the final one
    assert all(len(s) <= 39 for s in states)  # never wraps onto a second terminal line
    assert states[-1].startswith("thumbnails  1000/1000") and states[-1].endswith("…")


def test_the_rate_follows_the_recent_pace() -> None:
    clock = Clock()
    p = Progress("x", total=1000, mode="none", clock=clock, window_s=60)
    for _ in range(120):  # two minutes at 1/s...
        clock.t += 1
        p.update(1)
    assert p.rate() == pytest.approx(1.0)
    for _ in range(60):  # ...then a minute at 4/s: the rate is the recent one, not the mean
        clock.t += 0.25
        p.update(1)
        clock.t += 0.75
        p.update(3)
    assert p.rate() == pytest.approx(4.0, rel=0.05)
    assert p.time_left() == pytest.approx((1000 - 360) / 4.0, rel=0.05)
    assert p.summary()["rate"] == pytest.approx(2.0)  # the summary's rate is the run's mean
    clock.t += 600  # stalled: no rate, no time left, but the time so far
    assert p.rate() == 0 and p.time_left() is None
    assert p.line() == "x  360/1000 items  36% | 0.00 items/s | 13m00s elapsed"


def test_start_up_time_is_not_part_of_the_pace() -> None:
    clock = Clock()
    p = Progress("train", total=100, mode="none", clock=clock)
    clock.t += 30  # Ray starting, a model loading
    p.update(1)
    assert p.rate() == pytest.approx(1 / 30)
    for _ in range(5):
        clock.t += 2
        p.update(1)
    assert p.rate() == pytest.approx(0.5)


def test_unknown_total_and_a_total_set_later() -> None:
    clock, out = Clock(), io.StringIO()
    p = bar(clock, out, what="sources", unit="inputs", width=200)
    for _ in range(5):
        clock.t += 1
        p.update(1)
    assert p.time_left() is None
    assert p.line() == "sources  5 inputs | 1.00 inputs/s | 5s elapsed"
    p.total = 10
    assert p.line() == "sources  5/10 inputs  50% | 1.00 inputs/s | 5s left"
    p.close()
    assert draws(out.getvalue())[-1] == "sources  5/10 inputs  50% | 1.00 inputs/s | done in 5s"


def test_resumed_work_counts_but_is_not_in_the_rate() -> None:
    clock = Clock()
    p = Progress("train", total=300, unit="images", mode="none", clock=clock)
    p.skip(200)
    for _ in range(10):
        clock.t += 1
        p.update(2)
    assert p.done == 220 and p.rate() == pytest.approx(2.0)
    assert p.time_left() == pytest.approx(40)


def test_lines_mode_writes_a_line_every_interval_and_one_at_the_end() -> None:
    clock, out = Clock(), io.StringIO()
    with Progress(
        "build", total=100, unit="videos", mode="lines", stream=out, clock=clock, interval_s=30
    ) as p:
        for i in range(100):
            clock.t += 1
            p.update(1, errors=int(i == 50))
            p.note(f"fetched {i + 1}")  # a note alone writes nothing
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines == [
        "build  30/100 videos  30% | 1.00 videos/s | 1m10s left | fetched 29",
        "build  60/100 videos  60% | 1.00 videos/s | 40s left | 1 error | fetched 59",
        "build  90/100 videos  90% | 1.00 videos/s | 10s left | 1 error | fetched 89",
        "build  100/100 videos  100% | 1.00 videos/s | done in 1m40s | 1 error | fetched 100",
    ]


def test_none_mode_writes_nothing_and_still_counts() -> None:
    clock, out = Clock(), io.StringIO()
    with Progress("x", total=3, mode="none", stream=out, clock=clock) as p:
        clock.t += 3
        p.update(3, errors=1)
        p.write("a message")  # messages are not progress: they are written in every mode
    assert out.getvalue() == "a message\n"
    assert p.summary() == {
        "what": "x",
        "done": 3,
        "total": 3,
        "errors": 1,
        "seconds": 3.0,
        "rate": 1.0,
    }


def test_a_failed_block_says_so() -> None:
    clock, out = Clock(), io.StringIO()
    with pytest.raises(KeyError), bar(clock, out, what="x", total=9, width=100) as p:
        clock.t += 2
        p.update(1)
        raise KeyError
    assert draws(out.getvalue())[-1].startswith(
        "x  1/9 items  11% | 0.50 items/s | stopped after 2s"
    )


def test_modes_from_set_mode_the_environment_and_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert current_mode(io.StringIO()) == "none"  # auto: not a terminal
    assert current_mode(Terminal()) == "bar"
    with Progress("x", stream=Terminal(), refresh_s=0) as p:
        assert p.mode == "bar"
    monkeypatch.setenv("VIDRAY_PROGRESS", "lines")
    assert current_mode(Terminal()) == "lines"  # e.g. set by jobs/*.py for `ray job submit`
    monkeypatch.setenv("VIDRAY_PROGRESS_INTERVAL", "5")
    assert Progress("x", stream=io.StringIO()).interval_s == 5
    set_mode("none")
    assert current_mode(Terminal()) == "none"
    set_mode("lines", interval_s=2)
    assert Progress("x", stream=io.StringIO()).interval_s == 2
    with pytest.raises(ValueError, match="use one of auto, bar, lines, none"):
        set_mode("fancy")


def test_update_is_thread_safe() -> None:
    out = Terminal()
    with Progress("train", total=8000, mode="bar", stream=out, width=80, refresh_s=0.01) as p:
        threads = [
            threading.Thread(target=lambda: [p.update(1, errors=j % 100 == 0) for j in range(1000)])
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert (p.done, p.errors) == (8000, 80)
    states = draws(out.getvalue())
    assert states[-1].startswith("train  8000/8000 items  100%")
    assert all(re.match(r"train  \d+/8000 items +\d+%", s) for s in states)


def test_messages_and_stderr_go_above_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    clock = Clock()
    p = Progress("build", total=4, unit="videos", clock=clock, width=100, refresh_s=0)
    assert isinstance(sys.stderr, AboveBars)  # while the bar is shown
    clock.t += 1
    p.update(1)
    echo("[1/4] a.mp4: error at decode")
    print("a warning from somewhere else", file=sys.stderr)
    p.close()
    assert sys.stderr is term
    text = term.getvalue()
    assert "\r\x1b[K[1/4] a.mp4: error at decode\n\rbuild  1/4" in text
    assert "\r\x1b[Ka warning from somewhere else\n\rbuild  1/4" in text
    # With no bar shown, a message is a plain line.
    echo("plain")
    assert term.getvalue().endswith("\nplain\n")


def test_polling_calls_until_the_block_ends_and_once_more() -> None:
    calls: list[int] = []

    def poll() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a failing poll is skipped, not raised")

    with polling(poll, every_s=0.01):
        while len(calls) < 4:
            threading.Event().wait(0.01)
    seen = len(calls)
    threading.Event().wait(0.05)
    assert len(calls) == seen  # stopped, after the final call


def test_training_progress_from_rank_zero_posts() -> None:
    from vidray.train.ray_train import show_training

    clock = Clock()
    p = Progress("train", total=3 * 72, unit="images", mode="none", clock=clock)
    state = {"start_epoch": 1, "epoch": 1, "epochs": 3, "rows": 0, "step": 5, "loss": 0.7}
    show_training(p, state, per_epoch=72)  # resumed at epoch 2: the first epoch is done
    assert p.done == 72 and p.status == "epoch 2/3, step 5, loss 0.700"
    clock.t += 4
    show_training(p, {**state, "rows": 32, "step": 7, "val_loss": 0.75}, per_epoch=72)
    assert p.done == 104 and p.rate() == pytest.approx(8.0)
    assert p.status == "epoch 2/3, step 7, loss 0.700, val_loss 0.750"


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_prints_one_json_line_when_stdout_is_no_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vidray.cli import main

    args = ["sample", str(tmp_path / "s"), "--videos", "1", "--minutes", "0.1", "--subjects", "1"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    (line,) = out.splitlines()
    assert json.loads(line) == {
        "dir": str(tmp_path / "s"),
        "videos": 1,
        "files": [str(tmp_path / "s" / "sample_000.mp4")],
    }
    assert f"wrote 1 narrated videos with ground truth to {tmp_path / 's'}" in err
    assert f"next: vidray build {tmp_path / 's'} --output OUT" in err


def test_cli_on_a_terminal_prints_the_summary_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidray.cli import main

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    args = ["sample", str(tmp_path / "s"), "--videos", "1", "--minutes", "0.1", "--subjects", "1"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"wrote 1 narrated videos with ground truth to {tmp_path / 's'}",
        f"next: vidray build {tmp_path / 's'} --output OUT",
    ]
    assert err == ""
    assert main([*args, "--json"]) == 0  # --json asks for the JSON line on a terminal too
    out, err = capsys.readouterr()
    assert json.loads(out)["videos"] == 1 and "next: vidray build" in err


def test_progress_option_before_or_after_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from vidray.cli import build_parser

    assert build_parser().parse_args(["index", "--model-dir", "m"]).progress == "auto"
    args = ["--progress", "bar", "index", "--model-dir", "m", "--progress", "lines"]
    assert build_parser().parse_args(args).progress == "lines"
    monkeypatch.setenv("VIDRAY_PROGRESS", "none")
    assert build_parser().parse_args(["index", "--model-dir", "m"]).progress == "none"


@pytest.mark.parametrize("job,command", [("build_dataset", "build"), ("train", "train")])
def test_jobs_ask_for_progress_lines(
    job: str, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vidray.cli

    # The job sets $VIDRAY_PROGRESS in os.environ: a copy, so it does not outlive the test.
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if "VIDRAY" not in k})
    calls: list[tuple[list[str], str | None]] = []

    def fake_main(argv: list[str]) -> int:
        calls.append((argv, os.environ.get("VIDRAY_PROGRESS")))
        return 0

    monkeypatch.setattr(vidray.cli, "main", fake_main)
    monkeypatch.setattr(sys, "argv", [f"{job}.py", "ROOT", "--output", "OUT"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / "jobs" / f"{job}.py"), run_name="__main__")
    assert stop.value.code == 0
    assert calls == [([command, "ROOT", "--output", "OUT"], "lines")]
    os.environ["VIDRAY_PROGRESS"] = "none"  # the job's runtime env may say otherwise
    with pytest.raises(SystemExit):
        runpy.run_path(str(ROOT / "jobs" / f"{job}.py"), run_name="__main__")
    assert calls[-1][1] == "none"


@pytest.mark.slow
def test_cli_build_shows_progress_lines_and_ends_with_a_json_summary(
    local_ray: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vidray.cli import main
    from vidray.testing import media
    from vidray.testing.webserver import serve

    videos, served = tmp_path / "videos", tmp_path / "served"
    videos.mkdir()
    served.mkdir()
    for i in range(2):
        media.write_test_video(videos / f"v{i}.mp4", seconds=2.0 + i / 10)
    media.random_bytes(videos / "bad.mp4")
    media.write_test_video(served / "web.mp4", seconds=2.2)
    monkeypatch.setenv("VIDRAY_PROGRESS_INTERVAL", "0")  # a line at every update
    out = tmp_path / "out"
    with serve(served) as base:
        args = ["--progress", "lines", "build", str(videos), f"{base}/files/web.mp4"]
        assert main([*args, "--output", str(out), "build.decode.every_s=1"]) == 0
    stdout, stderr = capsys.readouterr()
    (line,) = stdout.splitlines()
    summary = json.loads(line)
    assert (summary["videos"], summary["errors"], summary["fetched"]) == (3, 1, 1)
    assert summary["error_stages"] == {"decode": 1} and summary["output"] == str(out)
    assert "sources  4/4 inputs  100%" in stderr and "4 videos found" in stderr
    assert re.search(r"^build  1/4 videos  25% \| ", stderr, re.M)
    final = r"^build  4/4 videos  100% \| .* done in [\dms]+ \| 1 error \| fetched 1 \("
    assert re.search(final, stderr, re.M)
    assert re.search(r"^\[\d/4\] bad\.mp4: error at decode \(corrupt\)", stderr, re.M)
    assert f"built {out}: 3 videos, 1 errors, " in stderr
    assert "errors by stage: decode 1" in stderr
    assert f"next: vidray train {out} --model-dir MODEL_DIR" in stderr


@pytest.mark.slow
def test_cli_train_shows_epochs_images_per_second_and_loss(
    local_ray: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vidray.cli import main
    from vidray.testing.frames import write_frames_dataset

    write_frames_dataset(tmp_path / "data", videos_per_word=2, frames_per_video=4)
    monkeypatch.setenv("VIDRAY_PROGRESS_INTERVAL", "0")
    tiny = ["widths=[8,16]", "embed_dim=32", "image_size=32", "batch_size=8", "index=false"]
    args = ["--progress", "lines", "train", str(tmp_path / "data"), "--model-dir"]
    assert main([*args, str(tmp_path / "m"), "epochs=2", "num_workers=1", *tiny]) == 0
    stdout, stderr = capsys.readouterr()
    (line,) = stdout.splitlines()
    summary = json.loads(line)
    assert summary["epochs_done"] == 2
    n = 2 * summary["labelled_train_frames"]
    lines = [x for x in stderr.splitlines() if x.startswith("train  ")]
    assert len(lines) >= 2 and all(re.match(rf"train  \d+/{n} images ", x) for x in lines)
    final = rf"train  {n}/{n} images  100% \| [\d.]+ images/s \| done in [\dms]+ \| "
    assert re.fullmatch(final + r"epoch 2/2, step \d+, loss [\d.]+, val_loss [\d.]+", lines[-1])
    assert f"next: vidray eval --model-dir {tmp_path / 'm'}" in stderr
