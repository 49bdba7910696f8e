"""The README's configuration reference, generated from the settings models.

Every key of dnft.yaml (``dnft.config.Settings``) and of a collection rules file
(``dnft.collection.rules.Collection``), with its type, bounds and default, between the
``<!-- config-reference:start -->`` and ``<!-- config-reference:end -->`` markers of README.md.

    .venv/bin/python scripts/config_reference.py           # rewrite README.md's block
    .venv/bin/python scripts/config_reference.py --check   # exit 1 when it is out of date

tests/unit/test_config_reference.py fails when the README's block is out of date.
"""

from __future__ import annotations

import argparse
import sys
import types
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dnft.collection.rules import Collection
from dnft.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The settings models an annotation holds (through lists, unions and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models(arg))
    return found


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type_name(get_args(annotation)[0])
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        names = " or ".join(_type_name(a) for a in args)
        return names if len(args) == len(get_args(annotation)) else f"{names} (optional)"
    if origin is list:
        if len(_models(annotation)) > 1:
            return "list of sections (one shape per `kind`)"
        return f"list of {_type_name(get_args(annotation)[0])}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"map {_type_name(key)} -> {_type_name(value)}"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "section"
        if issubclass(annotation, Enum):
            return " \\| ".join(f"`{m.value}`" for m in annotation)
        return {
            str: "string",
            int: "integer",
            float: "number",
            bool: "boolean",
            Decimal: "decimal",
            Path: "path",
        }.get(annotation, annotation.__name__)
    return str(annotation)


# How each annotated-types constraint reads in the reference.
_BOUND_LABELS: tuple[tuple[type, str], ...] = (
    (Ge, ">= {0.ge}"),
    (Gt, "> {0.gt}"),
    (Le, "<= {0.le}"),
    (Lt, "< {0.lt}"),
    (MinLen, "length >= {0.min_length}"),
    (MaxLen, "length <= {0.max_length}"),
)


def _bounds(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        label = next((text for kind, text in _BOUND_LABELS if isinstance(item, kind)), None)
        if label is not None:
            parts.append(label.format(item))
        elif getattr(item, "pattern", None):
            parts.append(f"pattern `{item.pattern}`")
    return ", ".join(parts).replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        try:
            plain = type(value)()
        except ValueError:  # a section whose own fields have no valid defaults
            plain = None
        if plain == value:
            return "(its keys' defaults)"
        shown = {k: v for k, v in value.model_dump(mode="json").items() if v is not None}
        return f"`{shown}`"
    if value is None:
        return "none"
    if value == "":
        return '`""`'
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path | Decimal):
        value = str(value)
    if isinstance(value, bool):
        value = str(value).lower()
    return f"`{value}`"


def _tag(model: type[BaseModel]) -> str:
    """The ``kind`` a model of a discriminated union is chosen by."""
    tag = model.model_fields["kind"].annotation
    return str(get_args(tag)[0]) if get_origin(tag) is Literal else model.__name__


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, type and bounds, default) for every field, nested sections flattened."""
    out: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        kind = _type_name(annotation)
        bounds = _bounds(field)
        out.append((key, f"{kind} ({bounds})" if bounds else kind, _default(field)))
        nested = _models(annotation)
        if not nested:
            continue
        item = "[]" if get_origin(annotation) is list else ""
        discriminated = len(nested) > 1
        if discriminated:
            tags = " \\| ".join(f"`{_tag(sub)}`" for sub in nested)
            out.append((f"{key}{item}.kind", tags, "**required**"))
        for sub in nested:
            if discriminated:
                sub_prefix = f"{key}{item}<{_tag(sub)}>."
                out.extend(r for r in rows(sub, sub_prefix) if not r[0].endswith(">.kind"))
            else:
                out.extend(rows(sub, f"{key}{item}."))
    return out


def _table(title: str, model: type[BaseModel]) -> str:
    lines = [title, "", "| key | type | default |", "|---|---|---|"]
    lines += [f"| `{key}` | {kind} | {default} |" for key, kind, default in rows(model)]
    return "\n".join(lines)


def reference() -> str:
    """The generated block, markers included."""
    return "\n".join(
        [
            START,
            "<!-- generated by scripts/config_reference.py from dnft/config/ and "
            "dnft/collection/rules.py: do not edit by hand -->",
            "",
            _table(
                "**dnft.yaml** (`<kind>` marks a key of one feed kind only: `kind: http`, ...)",
                Settings,
            ),
            "",
            _table("**Collection rules file** (`collections[].file`)", Collection),
            END,
        ]
    )


def replace_block(text: str, block: str) -> str:
    """``text`` with its marked block replaced; raises ValueError when the markers are missing."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {START} ... {END} block")
    return text[:start] + block + text[end + len(END) :]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is stale")
    args = parser.parse_args()
    text = README.read_text(encoding="utf-8")
    updated = replace_block(text, reference())
    if args.check:
        if updated != text:
            print("README.md's configuration reference is out of date: run "
                  "`.venv/bin/python scripts/config_reference.py`", file=sys.stderr)  # fmt: skip
            return 1
        return 0
    README.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
