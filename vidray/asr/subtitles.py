"""The `subtitles` backend: creator or automatic captions fetched by yt-dlp → a word-level transcript."""

from __future__ import annotations

import html
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from vidray.config import AsrConfig, SubtitlesConfig
from vidray.schema import Word

# A piece of a cue's text and the time it starts at; None where the format gives no time, so the
# piece continues the one before it (or starts with the cue).
Segment = tuple[float | None, str]
Cue = tuple[float, float, list[Segment]]

# Formats with word times first, so an automatic track keeps them when several were fetched.
EXTS = ("json3", "srv3", "vtt", "srv2", "ttml", "srv1", "srt", "dfxp", "xml", "sbv", "ass", "ssa")

_TIME = r"(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3}"
_TIMING = re.compile(rf"^\s*({_TIME})\s*-->\s*({_TIME})")
_SBV_TIMING = re.compile(
    rf"^\s*({_TIME}),({_TIME})\s*$"
)  # YouTube's SubViewer: `0:00:01.000,0:00:03.000`
_CUE_NUMBER = re.compile(r"^\s*\d+\s*$")
_INLINE_TIME = re.compile(rf"<({_TIME})>")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # HTML-like tags, and ASS overrides such as {\an8}
_NON_SPEECH = re.compile(r"\[[^\]]*\]|\([^)]*\)|[♪♫][^♪♫\n]*[♪♫]?")
# A speaker label opens a line or follows `>>`, the broadcast mark of a change of speaker.
_SPEAKER = re.compile(r"(?:^|>>)\s*-?\s*[A-Z][A-Z0-9 .'-]*[A-Z0-9]:(?=\s|$)|>{2,}", re.MULTILINE)
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_OFFSET = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|f|t)?")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, None: 1.0}


def split_words(text: str) -> list[str]:
    """Caption text → the words said: no sound tags, lyrics, speaker labels or edge punctuation."""
    text = _NON_SPEECH.sub(" ", _SPEAKER.sub(" ", html.unescape(text)))
    words = (_EDGE_PUNCT.sub("", token) for token in text.split())
    return [w for w in words if w]


def share(words: list[str], start: float, end: float) -> list[Word]:
    """Words of a span that has no word times: the span split in proportion to their length."""
    total = sum(len(w) for w in words)
    span = max(end - start, 0.0)
    out: list[Word] = []
    done = 0
    for w in words:
        a = start + span * done / total
        done += len(w)
        out.append(Word(w, a, start + span * done / total, 1.0, True))
    return out


def cue_words(cue: Cue, word_timed: bool) -> list[Word]:
    """One cue → its words. In a track with word times a piece holding one word is that word."""
    start, end, segments = cue
    spans: list[tuple[float, str]] = []
    for t, text in segments:
        if t is None and spans:
            spans[-1] = (spans[-1][0], spans[-1][1] + text)
        else:
            spans.append((start if t is None else t, text))
    out: list[Word] = []
    for i, (t, text) in enumerate(spans):
        t_end = spans[i + 1][0] if i + 1 < len(spans) else end
        words = split_words(text)
        if word_timed and len(words) == 1:
            out.append(Word(words[0], t, max(t, t_end), 1.0))
        elif words:
            out += share(words, t, t_end)
    return out


def tidy(words: list[Word]) -> list[Word]:
    """Sorted by start, each word once, times rounded to the millisecond, 0 ≤ start ≤ end."""
    seen: set[tuple[str, float]] = set()
    kept = []
    for w in sorted(words, key=lambda w: (w.start, w.end)):
        key = (w.word.casefold(), round(w.start, 2))
        if key not in seen and math.isfinite(w.start) and math.isfinite(w.end):
            seen.add(key)
            kept.append(w)
    out = []
    for i, w in enumerate(kept):
        start, end = max(0.0, w.start), w.end
        # A caption line stays on screen while the next one is typed, so a line's last word
        # would otherwise run on over the words that follow it.
        if i + 1 < len(kept) and start < kept[i + 1].start < end:
            end = kept[i + 1].start
        out.append(w._replace(start=round(start, 3), end=round(max(start, end), 3)))
    return out


def clock(text: str) -> float:
    """`[hh:]mm:ss.fff` (or `,fff`) → seconds."""
    seconds = 0.0
    for part in text.strip().replace(",", ".").split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def json3_cues(text: str) -> list[Cue]:
    """YouTube's json3: events in ms; automatic captions give each word's offset in `segs`."""
    cues = []
    for event in json.loads(text).get("events") or []:
        if not event.get("segs") or "tStartMs" not in event:
            continue  # window definitions and the like
        start = event["tStartMs"] / 1000
        segments: list[Segment] = []
        for i, seg in enumerate(event["segs"]):
            piece = seg.get("utf8", "")
            timed = bool(piece.strip()) and (i == 0 or "tOffsetMs" in seg)
            segments.append((start + seg.get("tOffsetMs", 0) / 1000 if timed else None, piece))
        cues.append((start, start + event.get("dDurationMs", 0) / 1000, segments))
    return cues


def text_cues(text: str, timing: re.Pattern[str] = _TIMING) -> list[Cue]:
    """WebVTT, SRT or (with `_SBV_TIMING`) SBV. YouTube's automatic VTT gives word times inline
    (`<00:00:01.520><c> word`) and shows each line again, as plain text, in the cues that follow;
    in a track with inline times a plain line equal to one of the previous cue's lines is such a
    repeat and is skipped. Creator tracks keep every line: a line said twice is said twice."""
    blocks: list[tuple[float, float, list[str]]] = []
    lines: list[str] | None = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if m := timing.match(line):
            if lines and _CUE_NUMBER.match(lines[-1]):
                lines.pop()  # an SRT without blank lines: the next cue's number, not a word
            lines = []
            blocks.append((clock(m[1]), clock(m[2]), lines))
        elif lines is not None and not line.strip():
            # YouTube opens a cue with a line of one space (the empty upper row): not its end.
            if line == "" or lines:
                lines = None
        elif lines is not None:
            lines.append(line)
    rolling = any(_INLINE_TIME.search(line) for _, _, cue_lines in blocks for line in cue_lines)
    cues: list[Cue] = []
    previous: set[str] = set()
    for start, end, cue_lines in blocks:
        plain = [" ".join(_TAG.sub("", line).split()) for line in cue_lines]
        segments: list[Segment] = []
        for line, flat in zip(cue_lines, plain, strict=True):
            repeat = rolling and flat in previous and not _INLINE_TIME.search(line)
            if flat and not repeat:
                segments += timed_line(line)
        previous = set(plain)
        cues.append((start, end, segments))
    return cues


def timed_line(line: str) -> list[Segment]:
    """A cue line → pieces, split at inline timestamps. The line opens with a line break: it
    starts a new word, and a speaker label may open it (`split_words` anchors labels at `^`)."""
    parts = _INLINE_TIME.split(line)
    segments: list[Segment] = [(None, "\n" + _TAG.sub("", parts[0]))]
    segments += [(clock(t), _TAG.sub("", p)) for t, p in zip(parts[1::2], parts[2::2], strict=True)]
    return segments


def xml_cues(text: str) -> list[Cue]:
    """srv1 (`<text start dur>` s), srv2 (`<text t d>` ms), srv3 (`<p t d>` ms, word offsets in
    `<s t>`) and TTML (`<p begin end|dur>` time expressions)."""
    root = ET.fromstring(text)
    params = {_local(k): v for k, v in root.attrib.items()}
    frame_rate = float(params.get("frameRate", 30))
    tick_rate = float(params.get("tickRate", frame_rate if "frameRate" in params else 1))
    cues = []
    for el in root.iter():
        if _local(el.tag) not in ("text", "p"):
            continue
        if "begin" in el.attrib:
            start = time_expression(el.attrib["begin"], frame_rate, tick_rate)
            if "end" in el.attrib:
                end = time_expression(el.attrib["end"], frame_rate, tick_rate)
            else:
                end = start + time_expression(el.get("dur", "0"), frame_rate, tick_rate)
        elif "start" in el.attrib:
            start = float(el.attrib["start"])
            end = start + float(el.get("dur", 0))
        elif "t" in el.attrib:
            start = float(el.attrib["t"]) / 1000
            end = start + float(el.get("d", 0)) / 1000
        else:
            continue
        segments: list[Segment] = [(None, el.text or "")]
        for child in el:
            offset = child.get("t") if _local(child.tag) == "s" else None
            segments.append(
                (None if offset is None else start + float(offset) / 1000, inner_text(child))
            )
            segments.append((None, child.tail or ""))
        cues.append((start, end, segments))
    return cues


def inner_text(el: ET.Element) -> str:
    head = "\n" if _local(el.tag) == "br" else el.text or ""
    return head + "".join(inner_text(child) + (child.tail or "") for child in el)


def time_expression(text: str, frame_rate: float, tick_rate: float) -> float:
    """A TTML time: `00:00:01.500`, `00:00:01:12` (frames), `1.5s`, `1500ms`, `90f`, `15000000t`."""
    text = text.strip()
    if m := _OFFSET.fullmatch(text):
        unit = m[2]
        scale = 1 / frame_rate if unit == "f" else 1 / tick_rate if unit == "t" else _UNIT_S[unit]
        return float(m[1]) * scale
    parts = text.split(":")
    if len(parts) == 4:
        return clock(":".join(parts[:3])) + float(parts[3]) / frame_rate
    return clock(text)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_ASS_FIELDS = "layer,start,end,style,name,marginl,marginr,marginv,effect,text"


def ass_cues(text: str) -> list[Cue]:
    """ASS/SSA: the `Dialogue:` lines, their fields named by the `[Events]` section's `Format:`
    (text last, so it may hold commas); `{\\...}` overrides go, `\\N` breaks a line."""
    fields = _ASS_FIELDS.split(",")
    section = ""
    cues: list[Cue] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if line.startswith("["):
            section = line.strip().lower()
        elif key == "format" and section == "[events]":
            fields = [f.strip().lower() for f in value.split(",")]
        elif key == "dialogue":
            cue = dict(zip(fields, value.split(",", len(fields) - 1), strict=False))
            body = re.sub(r"\\[Nn]", "\n", cue["text"]).replace("\\h", " ")
            cues.append((clock(cue["start"]), clock(cue["end"]), [(None, _TAG.sub("", body))]))
    return cues


_PARSERS: dict[str, Callable[[str], list[Cue]]] = {
    "json3": json3_cues,
    "vtt": text_cues,
    "srt": text_cues,
    "srv1": xml_cues,
    "srv2": xml_cues,
    "srv3": xml_cues,
    "ttml": xml_cues,
    "dfxp": xml_cues,  # TTML under its old name
    "xml": xml_cues,  # TTML or srv1, as yt-dlp's `best` may save it
    "sbv": lambda text: text_cues(text, _SBV_TIMING),
    "ass": ass_cues,
    "ssa": ass_cues,
}


def parse_track(text: str, ext: str) -> list[Word]:
    """A caption file's text → its words, sorted by start, score 1.0 (the caller may lower it).

    Words timed by the track itself are `interpolated=False`; words that share a cue's span
    in proportion to their length are `interpolated=True`. A malformed or unknown track gives [].
    """
    parser = _PARSERS.get((ext or "").lower())
    if parser is None or not text:
        return []
    try:
        cues = parser(text.lstrip("\ufeff"))
        word_timed = any(t is not None for _, _, segments in cues for t, _ in segments[1:])
        return tidy([w for cue in cues for w in cue_words(cue, word_timed)])
    # A broken file from the web is a track without words, never a failed video: json and
    # float() raise ValueError, XML ParseError is a SyntaxError, odd JSON shapes the rest.
    except (ValueError, TypeError, KeyError, AttributeError, SyntaxError):
        return []


def base_language(lang: str) -> str:
    """`en-US`, `en-orig`, `en_GB` → `en`."""
    return re.split(r"[-_]", lang, maxsplit=1)[0].lower()


def language_rank(lang: str, preferred: list[str]) -> int | None:
    """The place of the first preference `lang` matches ("en" matches "en-US"); None if none."""
    for rank, want in enumerate(preferred):
        want = want.lower()
        if want == "*" or lang.lower() == want or ("-" not in want and base_language(lang) == want):
            return rank
    return None


def candidates(
    tracks: list[dict[str, Any]], cfg: SubtitlesConfig, language: str | None
) -> list[dict[str, Any]]:
    """The tracks worth trying, best first: preferred language, creator before automatic, the
    language itself or its `-orig` before regional variants, formats with word times first."""
    preferred = list(cfg.languages)
    if language and preferred == SubtitlesConfig().languages:
        preferred = [language, *(p for p in preferred if p != language)]
    usable = [
        t
        for t in tracks
        if t
        and t.get("text")
        and t.get("lang")
        and (cfg.automatic or not t.get("automatic"))
        and not t["lang"].startswith("live_chat")  # chat messages, not speech
    ]
    # YouTube's `xx-orig` is the recognizer's own track; its other automatic languages are
    # machine translations, whose words were never said.
    spoken = {
        base_language(t["lang"])
        for t in usable
        if t.get("automatic") and t["lang"].endswith("-orig")
    }
    ranked = []
    for i, t in enumerate(usable):
        rank = language_rank(t["lang"], preferred)
        if rank is None or (
            t.get("automatic") and spoken and base_language(t["lang"]) not in spoken
        ):
            continue
        variant = "-" in t["lang"] and not t["lang"].endswith("-orig")
        ext = (t.get("ext") or "").lower()
        ext_rank = EXTS.index(ext) if ext in EXTS else len(EXTS)
        ranked.append(((rank, bool(t.get("automatic")), variant, ext_rank, i), t))
    return [t for _, t in sorted(ranked, key=lambda item: item[0])]


def _pick(
    tracks: list[dict[str, Any]], cfg: SubtitlesConfig, language: str | None
) -> tuple[dict[str, Any], list[Word]] | None:
    for track in candidates(tracks, cfg, language):
        words = parse_track(track["text"], track.get("ext") or "")
        if words:
            return track, words
    return None


def pick_track(
    tracks: list[dict[str, Any]], cfg: SubtitlesConfig, language: str | None
) -> dict[str, Any] | None:
    """The caption track to transcribe from, or None when no track has words."""
    picked = _pick(tracks, cfg, language)
    return picked[0] if picked else None


def transcribe_subtitles(
    tracks: list[dict[str, Any]], cfg: AsrConfig
) -> tuple[list[Word], str, str] | None:
    """A video's caption tracks → (words, base language, model such as `captions:en:vtt` or
    `automatic-captions:en-orig:json3`), or None when no track is usable."""
    picked = _pick(tracks or [], cfg.subtitles, cfg.language)
    if picked is None:
        return None
    track, words = picked
    kind = "automatic-captions" if track.get("automatic") else "captions"
    return words, base_language(track["lang"]), f"{kind}:{track['lang']}:{track.get('ext')}"
