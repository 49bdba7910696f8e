"""A batch event -> one event per token: ERC-1155 ``TransferBatch(operator, from, to, ids[],
values[])`` becomes one event per id, each with that id's amount.

Done in the indexer, before publishing, so every Kafka message stays keyed by its token: a
token's single and batch transfers share its partition and keep their order. Each part is
the batch's event with the id array (and the amount array, when configured) replaced by the
part's own item, under the same argument names, so a part reads like a single transfer
(``args.ids`` is this token's id, ``args.values`` its amount); ``part`` is the item's position,
which makes its event id ``chainId:blockHash:logIndex:part`` (``indexer.publish.event_id``).

The fan-out comes before any bound: the decoder cuts the other arguments as those of a normal
event (``max_array_items`` and ``max_value_bytes`` spent on them alone, the same for every
part), while ``ids`` and ``values`` are cut only at ``max_batch_parts`` items each
(``indexer.bounds.parts_bounder``): every pair up to it is published, each part a small
message. Beyond it the ids past the cap are not published, and every part carries the batch's
``truncated`` record (each cut array's full item count and sha256), so a consumer sees the
batch was larger; ``indexer.encode`` logs a warning and counts the cut. Arrays of different
lengths (a non-standard contract) pair up to the shorter. Pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dnft.config import TokenSource
from indexer.decode import DecodedEvent

__all__ = ["fan_out"]


def fan_out(event: DecodedEvent, source: TokenSource | None) -> Sequence[DecodedEvent]:
    """The events to publish for ``event``: itself, or one part per id of a batch."""
    if source is None or not source.batch:
        return (event,)
    ids = event.args.get(source.arg)
    if not isinstance(ids, list):
        return (event,)  # not what the ABI said: published whole, of no single token
    amounts: list[object] | None = None
    if source.amount_arg is not None:
        found = event.args.get(source.amount_arg)
        amounts = found if isinstance(found, list) else []
    count = len(ids) if amounts is None else min(len(ids), len(amounts))
    parts = []
    for i in range(count):
        args = {**event.args, source.arg: ids[i]}
        if amounts is not None and source.amount_arg is not None:
            args[source.amount_arg] = amounts[i]
        parts.append(dataclasses.replace(event, args=args, part=i))
    return parts
