"""Decode speed against the ffmpeg command line doing the same job, and peak memory on 3 hours.

    python bench/decode.py --work /tmp/vidray-bench [--minutes 10] [--intervals 1 2 5 10]

For each keyframe interval it makes a 640x360 H.264 + AAC video with film grain (flat
synthetic frames decode unrealistically fast), then times, in this one process:

- vidray: `decode_video` (16 kHz mono audio + one JPEG every 3 s, default strategy);
- ffmpeg: `ffmpeg -i v.mp4 -ac 1 -ar 16000 a.wav -vf fps=1/3 f%05d.jpg`.

Both are measured in CPU seconds (user + system, all threads; ffmpeg as a child process),
reported as video seconds per CPU second, best of `--repeat` runs. Then it loops the
10-minute video to `--long-hours` hours without re-encoding and reports the peak RSS of a
fresh process decoding it, next to the same process's RSS before decoding.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vidray.config import DecodeConfig
from vidray.stages.decode import decode_video
from vidray.testing.media import looped_copy


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def make_video(path: Path, minutes: float, gop_s: float, fps: int = 30) -> Path:
    if path.exists():
        return path
    gop = str(int(gop_s * fps))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size=640x360:rate={fps},noise=alls=3:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
         "-t", str(minutes * 60), "-c:v", "libx264", "-preset", "veryfast",
         "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-ac", "2", str(path)],
        check=True,
    )  # fmt: skip
    return path


def time_vidray(path: Path, cfg: DecodeConfig) -> tuple[float, str]:
    start = cpu_self()
    out = decode_video(str(path), cfg)
    return cpu_self() - start, out["decode_strategy"]


def time_ffmpeg(path: Path, every_s: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = cpu_children()
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(path), "-ac", "1", "-ar", "16000",
             f"{tmp}/a.wav", "-vf", f"fps=1/{every_s:g}", f"{tmp}/f%05d.jpg"],
            check=True,
        )  # fmt: skip
        return cpu_children() - start


PEAK_RSS = """
import json, resource, sys
from vidray.config import DecodeConfig
from vidray.stages.decode import decode_video
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = decode_video(sys.argv[1], DecodeConfig())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_mb": before / 1024, "peak_mb": peak / 1024,
                  "duration_s": out["duration_s"], "frames": len(out["frames"]),
                  "audio_mb": len(out["audio"] or b"") / 2**20}))
"""


def peak_rss(path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(path)], check=True, capture_output=True, text=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "vidray-bench"))
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--intervals", type=float, nargs="+", default=[1, 2, 5, 10])
    p.add_argument("--every", type=float, default=3.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--long-hours", type=float, default=3.0, help="0 skips the memory test")
    args = p.parse_args(argv)
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is needed as the reference: apt-get install ffmpeg")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cfg = DecodeConfig(every_s=args.every)
    print("| keyframe interval | vidray video-s/CPU-s | ffmpeg video-s/CPU-s | ratio | strategy |")
    print("| --- | --- | --- | --- | --- |")
    for gop in args.intervals:
        video = make_video(work / f"k{gop:g}_{args.minutes:g}min.mp4", args.minutes, gop)
        ours, strategy = min(time_vidray(video, cfg) for _ in range(args.repeat))
        ref = min(time_ffmpeg(video, args.every) for _ in range(args.repeat))
        seconds = args.minutes * 60
        print(
            f"| {gop:g} s | {seconds / ours:.0f} | {seconds / ref:.0f} | {ref / ours:.2f}x | {strategy} |",
            flush=True,
        )
    if args.long_hours > 0:
        base = make_video(work / f"k2_{args.minutes:g}min.mp4", args.minutes, 2)
        loops = max(1, round(args.long_hours * 60 / args.minutes))
        long = work / f"long_{args.long_hours:g}h.mp4"
        if not long.exists():
            looped_copy(base, long, loops)
        stats = peak_rss(long)
        print(
            f"\n{stats['duration_s'] / 3600:.2f} h video: peak RSS {stats['peak_mb']:.0f} MB "
            f"(the process before decoding: {stats['before_mb']:.0f} MB), "
            f"{stats['frames']:.0f} frames, FLAC audio {stats['audio_mb']:.1f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
