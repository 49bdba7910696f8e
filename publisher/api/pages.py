"""The gallery's HTML: two templates filled with escaped values.

Every value put into a template is escaped (``dnft.sanitize.for_html``: control and
bidi characters dropped, ``& < > " '`` escaped) unless it is :class:`Markup`, which only this
module builds, from escaped parts. Trait values, names and event arguments come from the chain
and are never trusted. Pure; templates are read once from the package.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from importlib import resources
from string import Template
from typing import Any

from dnft.sanitize import for_html

# Long enough for any label the timeline builds; for_html caps before escaping.
_MAX_TEXT = 2000


class Markup(str):
    """HTML built here from escaped parts: inserted as is."""

    __slots__ = ()


def esc(value: object) -> Markup:
    """``value`` as safe HTML text (or itself, if it is Markup already)."""
    if isinstance(value, Markup):
        return value
    return Markup(for_html(str(value), max_chars=_MAX_TEXT))


def join(parts: Iterable[Markup]) -> Markup:
    return Markup("".join(parts))


@functools.cache
def _template(name: str) -> Template:
    return Template(resources.files("publisher.api").joinpath("templates", name).read_text())


def render(template: str, **values: object) -> str:
    """Template ``template`` with every ``$value`` escaped; KeyError names a missing value."""
    return _template(template).substitute({k: esc(v) for k, v in values.items()})


def _when(iso: str) -> Markup:
    moment = datetime.fromisoformat(iso)
    return Markup(
        f'<time datetime="{esc(iso)}">{esc(moment.strftime("%Y-%m-%d %H:%M UTC"))}</time>'
    )


def traits_html(traits: Mapping[str, str]) -> Markup:
    return join(
        Markup(f"<div><dt>{esc(name)}</dt><dd>{esc(value)}</dd></div>")
        for name, value in traits.items()
    )


def timeline_item(entry: Mapping[str, Any], selected: int) -> Markup:
    n = int(entry["version"])
    current = ' aria-current="true"' if n == selected else ""
    return Markup(
        f'<li><a href="?version={n}" data-version="{n}"{current}>'
        f'<span class="v">Version {n}</span> {_when(entry["created_at"])} '
        f'<span class="why">{esc(entry["summary"])}</span></a></li>'
    )


def token_page(
    *,
    collection: str,
    token_id: int,
    entries: Sequence[Mapping[str, Any]],
    selected: Mapping[str, Any],
    image_size: int,
) -> str:
    """The page of one token showing version ``selected`` (one of ``entries``)."""
    n, latest = int(selected["version"]), int(entries[-1]["version"])
    return render(
        "token.html",
        title=f"{selected['name']} · version {n}",
        collection=collection,
        token_id=str(token_id),
        selected=str(n),
        following="true" if n == latest else "false",
        name=selected["name"],
        image_sha256=selected["image_sha256"],
        image_alt=selected["image_alt"],
        image_size=str(image_size),
        caption=f"Version {n} of {latest}",
        traits=traits_html(selected["traits"]),
        latest=str(latest),
        summary=f"Version {n}: {selected['summary']}",
        timeline=join(timeline_item(e, n) for e in entries),
    )


def index_page(
    *, collection: str, description: str, cards: Sequence[Mapping[str, Any]], next_url: str | None
) -> str:
    """The collection's page: one card per token (its current image, name and stage)."""
    items = join(
        Markup(
            f'<li><a href="/tokens/{int(c["token_id"])}/view">'
            f'<img src="/images/{esc(c["image_sha256"])}" alt="{esc(c["image_alt"])}" '
            f'width="256" height="256" loading="lazy">'
            f'<span class="name">{esc(c["name"])}</span>'
            f'<span class="stage">{esc(c["stage"])} · version {int(c["version"])}</span></a></li>'
        )
        for c in cards
    )
    more = Markup(f'<a class="more" href="{esc(next_url)}">More tokens</a>') if next_url else ""
    empty = "" if cards else "No token has a rendered version yet."
    return render(
        "index.html",
        title=collection,
        collection=collection,
        description=description,
        cards=items,
        more=more,
        empty=empty,
    )
