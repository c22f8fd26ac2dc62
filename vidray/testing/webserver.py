"""A local HTTP server for exercising yt-dlp downloads and their failure modes on loopback."""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import mimetypes
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

TYPES = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".m4a": "audio/mp4",
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
}
STALL_S = 60.0
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each keep-alive response waits ~40 ms for a delayed ACK
    head = False

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_HEAD(self) -> None:
        self.head = True
        self._route()

    def do_GET(self) -> None:
        self.head = False
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        count = self.server.hit(path)
        parts = path.lstrip("/").split("/", 2)
        kind, rest = parts[0], path[len(parts[0]) + 2 :]  # rest: everything after "/<kind>/"
        number = parts[1] if len(parts) > 1 and parts[1].isdigit() else None
        if kind == "files" and rest:
            self._file(rest)
        elif kind == "status" and number and len(parts) == 2:
            self._send(int(number), f"status {number}\n".encode(), "text/plain")
        elif kind == "flaky" and number and len(parts) == 3:
            if count <= int(number):
                self._send(500, f"flaky failure {count} of {number}\n".encode(), "text/plain")
            else:
                self._file(parts[2])
        elif kind == "stall":
            self.server.stopping.wait(STALL_S)
            self.close_connection = True
        elif kind == "slow" and number and len(parts) == 3:
            self._file(parts[2], rate=max(1, int(number)))
        elif kind == "loop":
            self._redirect(url.path)
        elif kind == "redirect" and rest:
            self._redirect("/files/" + quote(rest))
        elif kind == "page" and rest:
            self._page(rest, [rest], query.get("track", []))
        elif kind == "page2":
            self._page("several videos", query.get("src", []))
        elif kind == "feed.xml":
            self._feed(query.get("src", []), guid=query.get("guid", ["0"])[0] == "1")
        elif kind == "html-as-video.mp4":
            self._send(200, b"<html><head><title>Not a video</title></head><body>hi</body></html>")
        elif kind == "_count":
            body = json.dumps({"count": self.server.count(query.get("path", [""])[0])})
            self._send(200, body.encode(), "application/json")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _headers(self, code: int, ctype: str, length: int, headers: dict[str, str]) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _send(
        self, code: int, body: bytes, ctype: str = "text/html; charset=utf-8", **headers: str
    ) -> None:
        if code < 200 or code in (204, 304):  # these must not carry a body
            body = b""
        self._headers(code, ctype, len(body), headers)
        if not self.head and body:
            self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(302, b"redirect\n", "text/plain", Location=location)

    def _base(self) -> str:
        host, port = self.server.server_address[:2]
        return "http://" + self.headers.get("Host", f"{host!s}:{port}")

    def _src(self, src: str) -> str:
        """An absolute URL: `/a/path` as given, a bare name as a file under /files/."""
        return self._base() + (src if src.startswith("/") else "/files/" + quote(src))

    def _page(self, title: str, srcs: list[str], tracks: tuple[str, ...] | list[str] = ()) -> None:
        """`tracks` (?track=x.en.vtt) become `<track kind="subtitles">` in each video."""
        subs = "".join(
            f'<track kind="subtitles" srclang="en" label="English" src="{html.escape(self._src(t))}">'
            for t in tracks
        )
        videos = "".join(
            f'<video controls><source src="{html.escape(self._src(s))}" type="video/mp4">{subs}</video>\n'
            for s in srcs
        )
        body = (
            f"<!DOCTYPE html>\n<html><head><title>{html.escape(title)}</title></head>\n"
            f"<body><h1>{html.escape(title)}</h1>\n{videos}</body></html>\n"
        )
        self._send(200, body.encode())

    def _feed(self, srcs: list[str], guid: bool) -> None:
        items = "".join(
            f"<item><title>{escape(Path(s).stem or s)}</title><link>{escape(self._src(s))}</link>"
            + (f"<guid>{escape(self._src(s))}</guid>" if guid else "")
            + f'<enclosure url={quoteattr(self._src(s))} length="0" type="video/mp4"/></item>\n'
            for s in srcs
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
            f"<title>test feed</title><link>{escape(self._base())}/</link>"
            f"<description>local test feed</description>\n{items}</channel></rss>\n"
        )
        self._send(200, body.encode(), "application/rss+xml")

    def _file(self, rel: str, rate: int | None = None) -> None:
        root = self.server.root
        target = (root / rel).resolve()
        if ".." in Path(rel).parts or not target.is_relative_to(root) or not target.is_file():
            self._send(404, b"not found\n", "text/plain")
            return
        size = target.stat().st_size
        ctype = TYPES.get(target.suffix.lower()) or (
            mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        )
        start, end, code, headers = 0, size - 1, 200, {"Accept-Ranges": "bytes"}
        match = _RANGE.match(self.headers.get("Range", "").strip())
        if match and match.group(1) + match.group(2):  # malformed or multiple ranges: send it all
            first, last = match.groups()
            if first == "":  # suffix range: the last N bytes
                start = max(0, size - int(last)) if int(last) else size
            else:
                start, end = int(first), min(int(last), end) if last else end
            if start >= size or start > end:
                self._send(416, b"", "text/plain", **{"Content-Range": f"bytes */{size}"})
                return
            code, headers["Content-Range"] = 206, f"bytes {start}-{end}/{size}"
        self._headers(code, ctype, end - start + 1, headers)
        if self.head:
            return
        chunk = 64 * 1024 if rate is None else max(1, rate // 10)
        with target.open("rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0 and not self.server.stopping.is_set():
                data = fh.read(min(chunk, left))
                if not data:
                    break
                self.wfile.write(data)
                left -= len(data)
                if rate is not None:
                    time.sleep(len(data) / rate)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], root: Path, verbose: bool = False) -> None:
        super().__init__(addr, _Handler)
        self.root, self.verbose = root.resolve(), verbose
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up mid-response are normal here; report anything else."""
        if self.verbose or not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    def hit(self, path: str) -> int:
        """Count one request for `path` and return how many it has had, this one included."""
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            return self._counts[path]

    def count(self, path: str) -> int:
        with self._lock:
            return self._counts.get(path, 0)


@contextlib.contextmanager
def serve(root: str | Path, timeout: float = 10.0) -> Iterator[str]:
    """Run the server on a free loopback port in a child process; yield its base URL."""
    cmd = [sys.executable, "-m", "vidray.testing.webserver", "--root", str(root), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        stdout = proc.stdout
        assert stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        url = line[0].strip() if line else ""
        if not url.startswith("http://"):
            raise RuntimeError(f"webserver did not start within {timeout}s (exit {proc.poll()})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, type=Path, help="directory served under /files/")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    server = _Server((args.host, args.port), args.root, args.verbose)
    host, port = server.server_address[:2]
    print(f"http://{host!s}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()


if __name__ == "__main__":
    main()
