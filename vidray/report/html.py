"""Small HTML builders for the report's static pages (escaped text, tables, figures)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any


def fmt(value: Any) -> str:
    """A number as people read it: thousands separated, floats to three significant places."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return escape(str(value))


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "", raw: bool = False
) -> str:
    """A table; cells are escaped and formatted unless `raw` (cells already HTML)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else fmt(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def cards(items: Sequence[tuple[str, Any]]) -> str:
    """Headline numbers as a row of cards."""
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="value">{fmt(v)}</div>'
            f'<div class="what">{escape(k)}</div></div>'
            for k, v in items
        )
        + "</div>"
    )


def figure(src: str, caption: str, wide: bool = False) -> str:
    """A chart image with its caption."""
    return (
        f'<figure class="chart{" wide" if wide else ""}"><img src="{escape(src)}" '
        f'alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>'
    )


def section(anchor: str, title: str, body: str, note: str = "") -> str:
    lead = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{lead}{body}</section>'


def page(title: str, nav: Sequence[tuple[str, str]], body: str, scripts: Sequence[str]) -> str:
    """The whole page: nav links, sections, then the scripts (app.js first: the data files hand their contents to it)."""
    links = "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in nav)
    tags = "".join(f'<script src="{escape(s)}"></script>' for s in scripts)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="assets/style.css"></head>'
        f"<body><header><h1>{escape(title)}</h1><nav>{links}</nav></header>"
        f"<main>{body}</main>{tags}</body></html>\n"
    )
