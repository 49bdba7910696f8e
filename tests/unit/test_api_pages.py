"""Gallery HTML and timeline text: hostile on-chain strings are escaped, causes are named."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from dnft.collection.rules import collection_from_mapping
from publisher.api.pages import Markup, esc, index_page, token_page
from publisher.api.queries import EventRow, VersionRow
from publisher.api.timeline import MAX_TRIGGERS, describe
from tests.support.rules import BEAR_BULL, FED, MOOD, collection_rules

COLLECTION = collection_from_mapping(
    collection_rules(
        FED, MOOD, BEAR_BULL, salt="s", levels={0: "egg", 2: "kid"}, prompt="a {stage}"
    )
)

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'; alert(1); '",
    "</dd></dl><script src=//evil.example/x.js></script>",
    "javascript:alert(1)",
    "\u202eevil\u202c <b>bold</b>",  # bidi override
    "$name ${title} {{7*7}}",  # template syntax must stay text
    "&lt;already&gt; &amp;",
    "\x00\x1b[31mred",
]


def row(version: int, traits: dict[str, str], stage: str, triggered: list[str]) -> VersionRow:
    return VersionRow(
        token_id=1,
        version=version,
        state={"traits": traits, "stage": stage},
        state_hash=f"{version:064x}",
        name="Critter #1",
        image_sha256=f"{version:064x}",
        image_cid="bafk",
        metadata_sha256=f"{version + 100:064x}",
        metadata_cid="bafk",
        image_url=f"http://127.0.0.1:8000/images/{version:064x}",
        triggered_by=triggered,
        created_at=datetime(2026, 11, 22, 10, version, tzinfo=UTC),
    )


def history(value: str) -> list[dict[str, Any]]:
    v1 = row(1, {"fed": "0", "mood": "calm", "market": "unknown"}, "egg", ["e1"])
    v2 = row(2, {"fed": "0", "mood": "calm", "market": "bull"}, "egg", ["feed:eth-usd"])
    v3 = row(3, {"fed": "2", "mood": value, "market": "bull"}, "kid", ["e2", "e3"])
    events = {
        "e1": EventRow("Transfer", 1, {"to": "0xaa"}),
        "e2": EventRow("Fed", 2, {"amount": "1"}),
        "e3": EventRow("TraitSet", 3, {"key": "mood", "value": value}),
    }
    out, previous = [], None
    for r in (v1, v2, v3):
        out.append(describe(r, previous, COLLECTION, events, "http://127.0.0.1:8000"))
        previous = r
    return out


class Elements(HTMLParser):
    """Every start tag of a page with its attributes, as a browser would parse them."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def check_structure(page: str) -> list[tuple[str, dict[str, str | None]]]:
    """The page's elements are ours only: allowed tags, no event handlers, one script."""
    elements = Elements(page).found
    assert {tag for tag, _ in elements} <= ALLOWED_TAGS
    for _, attrs in elements:
        assert not [a for a in attrs if a.startswith("on")], attrs
        for url in (attrs.get("href"), attrs.get("src")):
            assert url is None or url.startswith(("/", "?", "#")), url
    assert [attrs.get("src") for tag, attrs in elements if tag == "script"] in (
        [],
        ["/static/gallery.js"],
    )
    return elements


ALLOWED_TAGS = {
    "html", "head", "meta", "title", "link", "script", "body", "a", "header", "main", "h1",
    "div", "figure", "img", "figcaption", "section", "h2", "dl", "dt", "dd", "label", "input",
    "p", "ol", "li", "span", "time", "ul",
}  # fmt: skip


class TestEscaping:
    """No on-chain string can add markup, attributes or script to a page."""

    @pytest.mark.parametrize("value", HOSTILE)
    def test_token_page(self, value: str) -> None:
        entries = history(value)
        page = token_page(
            collection="sample", token_id=1, entries=entries, selected=entries[-1], image_size=128
        )
        elements = check_structure(page)
        assert [tag for tag, _ in elements].count("img") == 1
        for invisible in ("\u202e", "\x00", "\x1b"):
            assert invisible not in page
        assert f"<dd>{esc(value)}</dd>" in page, "the value is shown, as text"
        assert html.unescape(esc(value)).strip()

    @pytest.mark.parametrize("value", HOSTILE)
    def test_index_page(self, value: str) -> None:
        cards = [
            {
                "token_id": 1,
                "version": 3,
                "name": value,
                "stage": value,
                "image_sha256": "ab" * 32,
                "image_alt": value,
            }
        ]
        page = index_page(collection="sample", description=value, cards=cards, next_url=None)
        elements = check_structure(page)
        assert [tag for tag, _ in elements].count("img") == 1
        assert "script" not in [tag for tag, _ in elements]

    def test_markup_is_only_what_we_build(self) -> None:
        assert esc("<b>") == "&lt;b&gt;"
        assert esc(Markup("<b>")) == "<b>"
        assert isinstance(esc("x"), Markup)


class TestTimeline:
    """Each version says what caused it and what changed."""

    def test_causes_and_changes(self) -> None:
        v1, v2, v3 = history("sunny")
        assert v1["summary"] == "Transfer(to=0xaa) at block 1 · first version"
        assert v2["triggers"][0]["label"] == "feed eth-usd: market unknown → bull"
        assert v2["changes"] == [{"trait": "market", "from": "unknown", "to": "bull"}]
        assert v2["summary"] == "feed eth-usd: market unknown → bull", "said once"
        assert v3["changes"][0] == {"trait": "stage", "from": "egg", "to": "kid"}
        assert v3["summary"].startswith("Fed(amount=1) at block 2, TraitSet(key=mood, value=sunny)")
        assert "stage egg → kid" in v3["summary"]
        assert v3["image_alt"].startswith("Critter #1, version 3: stage kid, fed 2")

    def test_many_triggers_are_counted(self) -> None:
        ids = [f"e{i}" for i in range(MAX_TRIGGERS + 5)]
        version = row(2, {"fed": "9"}, "kid", ids)
        entry = describe(version, row(1, {"fed": "0"}, "egg", []), COLLECTION, {}, "")
        assert len(entry["triggers"]) == MAX_TRIGGERS
        assert entry["triggers_omitted"] == 5
        assert "and 22 more" in entry["summary"]

    def test_long_values_are_cut(self) -> None:
        entry = history("x" * 10_000)[-1]
        assert len(entry["summary"]) < 400
        assert len(entry["image_alt"]) <= 300
