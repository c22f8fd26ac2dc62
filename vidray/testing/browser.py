"""Headless Chromium for tests of static HTML pages: what a page logged, broke or left unrendered."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage as _PwConsoleMessage
    from playwright.sync_api import Error as _PwError
    from playwright.sync_api import Page, Request

CHROMIUM_ENV = "VIDRAY_CHROMIUM"
ARTIFACTS_ENV = "VIDRAY_TEST_ARTIFACTS"
INSTALL_HINT = (
    "Chromium is needed to check HTML reports: install Debian's package with "
    "`sudo apt-get install chromium` (or `make system-deps`), or point "
    f"{CHROMIUM_ENV} at a Chromium binary"
)
PLAYWRIGHT_HINT = "the browser checks need playwright: pip install -e '.[dev]'"
# Debian's /usr/bin/chromium is a shell launcher that sources /etc/chromium.d (Google API
# keys, extension and GPU flags, a /dev/shm probe that errors on some containers); the
# browser itself lives here and is started directly, with only the flags below.
DEBIAN_BINARY = Path("/usr/lib/chromium/chromium")

# Playwright already passes most of these (plus --headless and --no-sandbox); they are
# repeated so the no-phoning-home set does not depend on its defaults. Chromium 156 still asks
# update.googleapis.com (update_client) and accounts.google.com/ListAccounts at startup with
# all of them, so nothing resolves but loopback: those requests fail inside the browser,
# with no DNS query, and a page that links anything off the machine shows it as a failed
# request. No --allow-file-access-from-files: <script src> and <img> of sibling files load
# from file:// without it, fetch()/XHR do not, exactly as in a user's own browser.
CHROMIUM_ARGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-first-run",
)

# Scrolls the page a viewport at a time so lazy images (native or IntersectionObserver) start,
# loads those still waiting (hidden ones), and waits for all of them, up to `ms`.
_LOAD_IMAGES_JS = """async (ms) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const deadline = performance.now() + ms;
  for (let y = 0; y < document.documentElement.scrollHeight && performance.now() < deadline;
       y += window.innerHeight) {
    window.scrollTo(0, y);
    await frame();
  }
  const images = [...document.images];
  for (const img of images) if (!img.complete) img.loading = "eager";
  const left = Math.max(0, deadline - performance.now());
  await Promise.race([
    Promise.all(images.map((img) => img.decode().catch(() => null))),
    new Promise((r) => setTimeout(r, left)),
  ]);
  window.scrollTo(0, 0);
  await frame();
}"""

_INVENTORY_JS = """() => ({
  broken: [...document.images]
    .filter((img) => !img.complete || img.naturalWidth === 0)
    .map((img) => [img.currentSrc || img.src || img.outerHTML.slice(0, 200),
                   img.complete ? "failed to load" : "still loading"]),
  images: document.images.length,
  svgs: [...document.querySelectorAll("svg")].filter((svg) => {
    const box = svg.getBoundingClientRect();
    return !svg.parentElement.closest("svg") && svg.childElementCount > 0
      && box.width > 0 && box.height > 0;
  }).length,
  canvases: document.querySelectorAll("canvas").length,
})"""


@dataclass(frozen=True)
class ConsoleMessage:
    type: str  # "log", "warning", "error", ...
    text: str
    url: str
    line: int

    @property
    def is_error(self) -> bool:
        return self.type == "error" and not self.is_browser_noise

    @property
    def is_browser_noise(self) -> bool:
        """Chromium asks a served page's host for /favicon.ico by itself (never over file://)
        and logs the 404 as the page's console error; nothing else is discounted."""
        return (
            self.text.startswith("Failed to load resource:")
            and urlsplit(self.url).path == "/favicon.ico"
        )


@dataclass(frozen=True)
class FailedRequest:
    url: str
    reason: str  # Chromium's net error, e.g. net::ERR_FILE_NOT_FOUND


@dataclass(frozen=True)
class BrokenImage:
    src: str
    reason: str  # "failed to load" or "still loading"


@dataclass
class PageReport:
    """What a page did up to one moment: its problems, what it drew, and its screenshot."""

    url: str
    console: list[ConsoleMessage] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions, with stack
    failed_requests: list[FailedRequest] = field(default_factory=list)
    broken_images: list[BrokenImage] = field(default_factory=list)
    images: int = 0
    svgs: int = 0  # outermost <svg> elements with children and a non-empty box
    canvases: int = 0
    screenshot: Path | None = None

    @property
    def console_errors(self) -> list[ConsoleMessage]:
        """Console errors but Chromium's own favicon request (`ConsoleMessage.is_browser_noise`)."""
        return [m for m in self.console if m.is_error]

    @property
    def problems(self) -> list[str]:
        """One line per thing that went wrong; console warnings are not counted."""
        return [
            *(f"console error: {m.text} ({m.url}:{m.line})" for m in self.console_errors),
            *(f"page error: {e}" for e in self.page_errors),
            *(f"request failed: {r.url} ({r.reason})" for r in self.failed_requests),
            *(f"image not rendered: {i.src} ({i.reason})" for i in self.broken_images),
        ]

    @property
    def ok(self) -> bool:
        return not self.problems


class CheckedPage:
    """A page opened by `open_page`, recording its console, errors and failed requests."""

    def __init__(self, page: Page, timeout_s: float) -> None:
        self.page = page
        self.timeout_s = timeout_s
        self.console: list[ConsoleMessage] = []
        self.page_errors: list[str] = []
        self.failed_requests: list[FailedRequest] = []
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        page.on("requestfailed", self._on_request_failed)
        page.on("crash", lambda _: self.page_errors.append("the page's renderer crashed"))

    def _on_console(self, msg: _PwConsoleMessage) -> None:
        where = msg.location
        self.console.append(ConsoleMessage(msg.type, msg.text, where["url"], where["lineNumber"]))

    def _on_page_error(self, err: _PwError) -> None:
        self.page_errors.append(err.stack or f"{err.name}: {err.message}")

    def _on_request_failed(self, request: Request) -> None:
        self.failed_requests.append(FailedRequest(request.url, request.failure or "unknown"))

    def report(self, screenshot: Path | None = None) -> PageReport:
        """Bring every image in (scrolling through the page), then report everything seen
        since the page opened; with `screenshot`, save a full-page PNG there."""
        self.page.evaluate(_LOAD_IMAGES_JS, self.timeout_s * 1000)
        seen = self.page.evaluate(_INVENTORY_JS)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=screenshot, full_page=True)
        return PageReport(
            url=self.page.url,
            console=list(self.console),
            page_errors=list(self.page_errors),
            failed_requests=list(self.failed_requests),
            broken_images=[BrokenImage(src, reason) for src, reason in seen["broken"]],
            images=seen["images"],
            svgs=seen["svgs"],
            canvases=seen["canvases"],
            screenshot=screenshot,
        )


def chromium_path() -> str:
    """The Chromium to run: $VIDRAY_CHROMIUM, else Debian's (behind its launcher script),
    else `chromium` on PATH."""
    if override := os.environ.get(CHROMIUM_ENV):
        if not os.access(override, os.X_OK):
            raise RuntimeError(f"{CHROMIUM_ENV}={override} is not an executable file")
        return override
    found = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    with open(found, "rb") as f:
        is_script = f.read(2) == b"#!"
    return str(DEBIAN_BINARY) if is_script and DEBIAN_BINARY.exists() else found


def artifact_dir() -> Path:
    """Where tests save screenshots: $VIDRAY_TEST_ARTIFACTS, else <repo>/test-artifacts."""
    if env := os.environ.get(ARTIFACTS_ENV):
        out = Path(env)
    else:
        repo = Path(__file__).resolve().parents[2]
        out = (repo if (repo / "pyproject.toml").exists() else Path.cwd()) / "test-artifacts"
    out.mkdir(parents=True, exist_ok=True)
    return out


def page_url(target: str | Path) -> str:
    """A URL for a page, a file or a folder holding index.html."""
    if isinstance(target, str) and ":" in target.split("/", 1)[0]:
        return target  # file://, http://, about:, data:
    path = Path(target).resolve()
    return (path / "index.html" if path.is_dir() else path).as_uri()


@contextlib.contextmanager
def open_page(
    target: str | Path,
    *,
    width: int = 1280,
    height: int = 900,
    timeout_s: float = 30.0,
    deadline_s: float = 120.0,
) -> Iterator[CheckedPage]:
    """Start headless Chromium, load `target` and yield it for interactions and reports.

    `timeout_s` bounds each step (launch, navigation, waits for images, clicks); `deadline_s`
    the whole session: past it the browser is killed, so a page stuck in a script loop fails
    the test with TimeoutError instead of hanging it. The browser is closed on the way out,
    whatever happened, and any of its processes still alive then are killed.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(PLAYWRIGHT_HINT) from exc
    url, executable = page_url(target), chromium_path()
    with sync_playwright() as pw:
        before = chromium_processes()
        browser = pw.chromium.launch(
            executable_path=executable,
            headless=True,
            chromium_sandbox=False,  # tests run as root in containers, where the sandbox cannot
            args=list(CHROMIUM_ARGS),
            timeout=timeout_s * 1000,
        )
        started = chromium_processes() - before
        fired = threading.Event()

        def expire() -> None:
            fired.set()
            _kill(started)

        watchdog = threading.Timer(deadline_s, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_s * 1000)
            checked = CheckedPage(page, timeout_s)
            page.goto(url, wait_until="load")
            yield checked
        except Exception as exc:
            if fired.is_set():
                raise TimeoutError(
                    f"{url}: the browser passed {deadline_s:g} s and was killed"
                ) from exc
            raise
        finally:
            watchdog.cancel()
            with contextlib.suppress(Exception):
                browser.close()
            _kill(started)


def check_page(
    target: str | Path,
    screenshot: Path | None = None,
    actions: Callable[[Page], object] | None = None,
    *,
    timeout_s: float = 30.0,
) -> PageReport:
    """Open `target`, run `actions` on it (clicks, paging), and report on the result."""
    with open_page(target, timeout_s=timeout_s) as checked:
        if actions is not None:
            actions(checked.page)
        return checked.report(screenshot)


def chromium_processes() -> set[int]:
    """Ids of the Chromium processes this process has started and not yet reaped: those of
    its descendants running a Chromium binary (not playwright's node driver). Linux only."""
    pids = set()
    for pid in _descendants():
        with contextlib.suppress(OSError):
            if "chrom" in Path(f"/proc/{pid}/exe").resolve().name:
                pids.add(pid)
    return pids


def _descendants() -> set[int]:
    """Ids of this process's descendants, from /proc (an empty set where there is none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        kids = children.get(todo.pop(), [])
        found.update(kids)
        todo.extend(kids)
    return found


def _kill(pids: set[int]) -> None:
    """SIGKILL those of `pids` that are still this process's descendants (not reused ids)."""
    for pid in pids & _descendants():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
