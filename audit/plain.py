"""Report parts as JSON-ready data, for ``dnft audit --json`` and ``dnft status --json``."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def plain(part: DataclassInstance, *, leave_out: Collection[str] = ()) -> dict[str, Any]:
    """A dataclass as a dict of its fields (but ``leave_out``), in declaration order: nested
    parts through their own ``as_dict`` (or this), tuples and lists as lists."""
    return {f.name: _value(getattr(part, f.name)) for f in fields(part) if f.name not in leave_out}


def _value(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return plain(value)
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    return value


class Plain:
    """A report part whose JSON form is :func:`plain` of it (mixed into dataclasses)."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        return plain(self)  # type: ignore[arg-type]  # subclasses are dataclasses
