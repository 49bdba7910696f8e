"""The review queue's HTML: each pending version beside its token's current one, with what
triggered it, and the buttons to decide. Every value is escaped (``pages.esc``); pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from publisher.api.curate_queries import QueueItem
from publisher.api.pages import Markup, esc, join, render
from publisher.api.timeline import changes, state_traits


def _figure(caption: str, image: str | None, alt: str) -> Markup:
    if image is None:
        return Markup(
            f'<figure><span class="none" role="img" aria-label="{esc(alt)}"></span>'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    return Markup(
        f'<figure><img src="/curate/images/{esc(image)}" alt="{esc(alt)}" width="256" '
        f'height="256"><figcaption>{esc(caption)}</figcaption></figure>'
    )


def item_html(item: QueueItem, why: str) -> Markup:
    """One candidate: a checkbox, current vs candidate art, the cause, reasons and buttons."""
    n = item.id
    current = (
        _figure(
            f"current: version {item.current_version}",
            item.current_image,
            f"token {item.token_id}, current version {item.current_version}",
        )
        if item.current_version is not None
        else _figure("no public version yet", None, f"token {item.token_id} has no public art")
    )
    label = "pending" if item.status == "pending" else f"attempt {item.attempt + 1}, failed"
    candidate = _figure(
        f"{label} (seed {item.seed})", item.image_sha256, f"token {item.token_id}, candidate {n}"
    )
    moved = changes(item.current_state, item.state)
    traits = ", ".join(f"{k}: {v}" for k, v in state_traits(item.state).items())
    reasons = join(Markup(f"<li>{esc(r.get('reason', ''))}</li>") for r in item.reasons)
    approve = (
        Markup(f'<button type="submit" name="one" value="approve:{n}">Approve</button>')
        if item.status == "pending"
        else Markup("")
    )
    return Markup(
        f'<li id="candidate-{n}" data-candidate="{n}" data-token="{item.token_id}">'
        f'<h3><label><input type="checkbox" name="id" value="{n}"> '
        f"{esc(item.collection)} #{item.token_id} · candidate {n}</label></h3>"
        f'<div class="pair">{current}{candidate}</div>'
        f'<p class="why">Triggered by: {esc(why or "(unknown)")}</p>'
        f'<p class="changes">Changes: {esc(_changes_text(moved))}</p>'
        f'<p class="traits">Traits: {esc(traits)}</p>'
        + (f'<ul class="reasons">{reasons}</ul>' if item.reasons else "")
        + f'<p class="actions">{approve}'
        f'<button type="submit" name="one" value="reject:{n}">Reject</button>'
        f'<button type="submit" name="one" value="reroll:{n}">Re-roll</button></p></li>'
    )


def _changes_text(moved: Sequence[Mapping[str, str]]) -> str:
    if not moved:
        return "none"
    return ", ".join(f"{c['trait']} {c['from']} → {c['to']}" for c in moved)


def queue_page(
    *,
    curator: str,
    csrf: str,
    notice: str,
    pending: Sequence[tuple[QueueItem, str]],
    failed: Sequence[tuple[QueueItem, str]],
    next_url: str | None,
) -> str:
    """The page: ``pending`` and ``failed`` as (candidate, what triggered it)."""
    more = Markup(f'<a class="more" href="{esc(next_url)}">More pending</a>') if next_url else ""
    return render(
        "curate.html",
        title="Curation · review queue",
        curator=curator,
        csrf=csrf,
        notice=notice,
        pending_count=str(len(pending)),
        pending_empty="" if pending else "Nothing is waiting for review.",
        pending=join(item_html(i, why) for i, why in pending),
        more=more,
        failed_count=str(len(failed)),
        failed_empty="" if failed else "No token is stuck on a failed render.",
        failed=join(item_html(i, why) for i, why in failed),
    )
