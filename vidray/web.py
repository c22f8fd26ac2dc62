"""yt-dlp plumbing shared by sources and fetch: failure reasons, retries with backoff, quiet logs."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any

from vidray.config import FetchConfig
from vidray.stages.base import VideoError

log = logging.getLogger(__name__)

INSTALL_HINT = "yt-dlp is needed for web video: pip install yt-dlp"

# (pattern in the error text, reason, transient?) — checked in order, first match wins.
MESSAGE_REASONS: list[tuple[str, str, bool]] = [
    (r"private video|this video is private", "private", False),
    (r"available in your country|geo.?restrict|not available from your location", "geo_blocked", False),
    (r"confirm your age|age.?restrict|inappropriate for some users", "age_gated", False),
    (r"video unavailable|has been removed|no longer available|account .*terminated|been deleted", "removed", False),
    (r"members.only|join this channel|requires payment|premium", "paywalled", False),
    (r"unsupported url", "unsupported", False),
    (r"requested format is not available|no video formats found", "no_formats", False),
    (r"redirect", "redirect_loop", False),
    (r"timed? ?out", "timeout", True),
    (r"incomplete ?read|connection (reset|aborted|refused)|remote end closed|broken pipe|temporary failure in name resolution", "connection", True),
]  # fmt: skip


def base_options(cfg: FetchConfig) -> dict[str, Any]:
    """yt-dlp options every call shares: quiet, the socket timeout, cookies, proxy, user agent."""
    opts: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "socket_timeout": cfg.socket_timeout_s,
        "logger": QuietLogger(),
    }
    if cfg.cookies:
        opts["cookiefile"] = cfg.cookies
    if cfg.proxy:
        opts["proxy"] = cfg.proxy
    if cfg.user_agent:
        opts["http_headers"] = {"User-Agent": cfg.user_agent}
    return opts


def classify(exc: BaseException) -> tuple[str, bool]:
    """(reason, transient) for a yt-dlp or network failure."""
    cause = getattr(exc, "exc_info", None)
    inner = cause[1] if cause and cause[1] is not None else exc
    text = f"{type(inner).__name__}: {inner} {exc}".lower()
    status = getattr(inner, "status", None) or getattr(inner, "code", None)
    if not isinstance(status, int) and (found := re.search(r"http error (\d{3})", text)):
        status = int(found.group(1))  # yt-dlp's downloader keeps only the message
    if isinstance(status, int) and 400 <= status < 600:
        if status == 429:
            return "rate_limited", True
        if status >= 500:
            return "server_error", True
        return (
            "not_found"
            if status in (404, 410)
            else "forbidden"
            if status in (401, 403)
            else "http_error"
        ), False
    for pattern, reason, transient in MESSAGE_REASONS:
        if re.search(pattern, text):
            return reason, transient
    if isinstance(inner, (TimeoutError, ConnectionError)):
        return ("timeout" if isinstance(inner, TimeoutError) else "connection"), True
    return "download_error", False


def backoff_s(attempt: int, cfg: FetchConfig, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter before retry number `attempt` (1, 2, ...)."""
    base = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** (attempt - 1))
    return base * (0.5 + 0.5 * (rng or random).random())


def with_retries(fn: Callable[[], Any], cfg: FetchConfig, what: str) -> tuple[Any, int]:
    """Call `fn`, retrying transient failures; (result, attempts) or a `VideoError`."""
    for attempt in range(1, cfg.retries + 2):
        try:
            return fn(), attempt
        except VideoError:
            raise
        except Exception as exc:
            reason, transient = classify(exc)
            if not transient or attempt > cfg.retries:
                note = f" after {attempt} attempts" if attempt > 1 else ""
                raise VideoError(reason, f"{what} failed{note}: {_clean(exc)}", attempt) from exc
            wait = backoff_s(attempt, cfg)
            log.info("%s: %s (%s), retrying in %.1fs", what, reason, _clean(exc), wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _clean(exc: BaseException) -> str:
    return re.sub(r"\x1b\[[0-9;]*m|^ERROR: ", "", str(exc)).strip()[:500]


class QuietLogger:
    """yt-dlp's chatter goes to debug logging; its errors come back as exceptions."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp warning: %s", msg)

    def error(self, msg: str) -> None:
        log.debug("yt-dlp error: %s", msg)
