"""What each version of a token is, for people: its traits, what changed, and what caused it.

A version's ``triggered_by`` lists chain event ids (``chainId:blockHash:logIndex``),
``feed:<id>`` for a feed round that moved the token and ``retracted:<event id>`` for an event
a reorg removed. Here they become short labels ("Fed(amount=1) at block 12", "feed eth-usd:
market bear → bull"), and the state is compared with the previous version's ("stage egg →
hatchling"). The result is plain data for JSON; on-chain strings in it are untrusted and must
be escaped wherever they are shown (the gallery escapes in HTML and uses textContent in JS).
Pure functions; nothing blocks.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from dnft.collection import Collection
from publisher.api.queries import EventRow, VersionRow

# Triggers listed per version: a feed change fans out one trigger per token, but a batch of
# events can be long; the rest is counted.
MAX_TRIGGERS = 20
_MAX_ARG_CHARS = 24
_MAX_ALT_CHARS = 300


def _short(value: Any, limit: int = _MAX_ARG_CHARS) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def state_traits(state: Mapping[str, Any]) -> dict[str, str]:
    """A version's traits for display: ``stage`` first, then the others by name."""
    traits = state.get("traits") or {}
    out = {"stage": str(state.get("stage", ""))}
    out.update({str(k): str(v) for k, v in sorted(traits.items())})
    return out


def changes(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[dict[str, str]]:
    """Traits whose value differs from the previous version's (none for a first version)."""
    if previous is None:
        return []
    before, after = state_traits(previous), state_traits(current)
    return [
        {"trait": name, "from": before.get(name, ""), "to": value}
        for name, value in after.items()
        if before.get(name) != value
    ]


def _event_label(event: EventRow) -> str:
    args = ", ".join(f"{_short(k)}={_short(v)}" for k, v in list(event.args.items())[:3])
    return f"{event.event}({args}) at block {event.block_number}"


def triggers(
    version: VersionRow,
    collection: Collection,
    events: Mapping[str, EventRow],
    change_list: Sequence[Mapping[str, str]],
) -> list[dict[str, Any]]:
    """The first MAX_TRIGGERS causes of ``version``, each with its kind and a label."""
    changed = {c["trait"]: c for c in change_list}
    out: list[dict[str, Any]] = []
    for raw in version.triggered_by[:MAX_TRIGGERS]:
        if raw.startswith("feed:"):
            feed = raw.removeprefix("feed:")
            moved = []
            for trait in collection.traits:
                if trait.feed != feed:
                    continue
                c = changed.get(trait.name)
                value = str(version.state.get("traits", {}).get(trait.name, ""))
                moved.append(
                    f"{trait.name} {c['from']} → {c['to']}" if c else f"{trait.name} {value}"
                )
            label = f"feed {_short(feed, 64)}" + (f": {', '.join(moved)}" if moved else "")
            traits = [t.name for t in collection.traits if t.feed == feed]
            out.append({"kind": "feed", "feed": feed, "traits": traits, "label": label})
        elif raw.startswith("retracted:"):
            event_id = raw.removeprefix("retracted:")
            out.append(
                {
                    "kind": "retraction",
                    "event_id": event_id,
                    "label": f"event {_short(event_id, 32)} removed by a reorg",
                }
            )
        elif raw in events:
            event = events[raw]
            out.append(
                {
                    "kind": "event",
                    "event_id": raw,
                    "event": event.event,
                    "block_number": event.block_number,
                    "label": _event_label(event),
                }
            )
        else:  # the event was retracted since, or an id of a kind this version does not know
            out.append({"kind": "event", "event_id": raw, "label": f"event {_short(raw, 32)}"})
    return out


def summary(
    trigger_list: Sequence[Mapping[str, Any]],
    omitted: int,
    change_list: Sequence[Mapping[str, str]],
    *,
    first: bool,
) -> str:
    """One line: the causes, then what changed ("Fed(amount=1) at block 12 · stage egg →
    hatchling"); a first version says so instead of listing changes."""
    causes = [str(t["label"]) for t in trigger_list[:3]]
    more = len(trigger_list) - len(causes) + omitted
    if more:
        causes.append(f"and {more} more")
    # A feed's label already says how its traits moved.
    told = {name for t in trigger_list if t["kind"] == "feed" for name in t["traits"]}
    untold = [c for c in change_list if c["trait"] not in told]
    moved = [f"{c['trait']} {_short(c['from'])} → {_short(c['to'])}" for c in untold[:4]]
    if len(untold) > 4:
        moved.append(f"and {len(untold) - 4} more changes")
    parts = [", ".join(causes)] if causes else []
    if moved:
        parts.append(", ".join(moved))
    elif first and not change_list:
        parts.append("first version")
    return " · ".join(parts)


def display_name(version: VersionRow) -> str:
    """The token's name as plain text (metadata stores it HTML-escaped)."""
    return html.unescape(version.name) or f"Token #{version.token_id}"


def alt_text(version: VersionRow) -> str:
    """Alt text for the image: name, version and traits, capped."""
    traits = ", ".join(f"{k} {_short(v, 40)}" for k, v in state_traits(version.state).items())
    text = f"{display_name(version)}, version {version.version}: {traits}"
    return text if len(text) <= _MAX_ALT_CHARS else text[: _MAX_ALT_CHARS - 1] + "…"


def describe(
    version: VersionRow,
    previous: VersionRow | None,
    collection: Collection,
    events: Mapping[str, EventRow],
    public_url: str,
) -> dict[str, Any]:
    """A version as the API lists it and the gallery shows it."""
    # Without the previous version (a first version) nothing is listed as changed.
    change_list = changes(previous.state if previous is not None else None, version.state)
    trigger_list = triggers(version, collection, events, change_list)
    omitted = max(0, len(version.triggered_by) - MAX_TRIGGERS)
    line = summary(trigger_list, omitted, change_list, first=version.version == 1)
    return {
        "version": version.version,
        "created_at": version.created_at.astimezone(UTC).isoformat(),
        "name": display_name(version),
        "traits": state_traits(version.state),
        "state_hash": version.state_hash,
        "image_sha256": version.image_sha256,
        "image_cid": version.image_cid,
        "image_url": version.image_url,
        "image_alt": alt_text(version),
        "metadata_url": f"{public_url}/tokens/{version.token_id}/versions/{version.version}",
        "metadata_sha256": version.metadata_sha256,
        "metadata_cid": version.metadata_cid,
        "triggers": trigger_list,
        "triggers_omitted": omitted,
        "changes": change_list,
        "summary": line,
    }
