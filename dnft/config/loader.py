"""Loading settings: one YAML file, ``${ENV}`` substitution, ``DNFT_*`` overrides, and
validation into the frozen typed models of :mod:`dnft.config.settings`.

Precedence, lowest first: the YAML file, then environment overrides. An override names a path
with ``__`` between segments, e.g. ``DNFT_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092`` or
``DNFT_NETWORKS__LOCAL__RPC_URLS='[http://a, http://b]'``: a segment under a list picks the item
whose ``name`` (or ``id``) matches, or an index. Values are parsed as YAML scalars/flow lists.

Every failure raises :class:`dnft.errors.ConfigError` whose ``key`` is the dotted path of the
failing setting, so ``dnft config check`` can name it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dnft.config.settings import Settings
from dnft.errors import ConfigError

ENV_PREFIX = "DNFT_"

DEFAULT_CONFIG_PATH = "dnft.yaml"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# PyYAML's scanner is quadratic in flow nesting ("[[[[..."), and its composer recurses once per
# level: deeper nesting is refused before parsing. No config needs more than a handful.
MAX_YAML_FLOW_DEPTH = 64

_YAML_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"\\]|\\.)*\"")

_YAML_NOT_FLOW = re.compile(r"[^\[\]{}]+")

# "feeds[m].sources: unknown feed 'x'": a whole-file check's message, led by the failing key.
_LEADING_KEY = re.compile(r"([a-z_]+(?:\[[^\]]*\])?(?:\.[a-z_]+(?:\[[^\]]*\])?)*): (.+)", re.DOTALL)

# ${ENV} substitution walks every value; YAML aliases can make a small file expand
# exponentially ("billion laughs") or refer to itself.
MAX_CONFIG_VALUES = 200_000


def parse_yaml(text: str, source: str, key: str = "") -> Any:
    """``yaml.safe_load`` whose every failure is a ConfigError at ``key`` naming ``source``.

    Besides YAMLError, PyYAML raises ValueError for impossible dates (``2001-13-01``) and
    RecursionError for deep nesting; flow nesting beyond MAX_YAML_FLOW_DEPTH is refused first.
    """
    flow = _YAML_NOT_FLOW.sub("", _YAML_QUOTED.sub("", text))
    depth = deepest = 0
    for bracket in flow:
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    if deepest > MAX_YAML_FLOW_DEPTH:
        raise ConfigError(key, f"{source} nests [ ] / {{ }} deeper than {MAX_YAML_FLOW_DEPTH}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(key, f"{source} is not valid YAML: {exc}") from None
    except ValueError as exc:  # the timestamp constructor: "2001-13-01"
        raise ConfigError(key, f"{source} holds an invalid value: {exc}") from None
    except RecursionError:
        raise ConfigError(key, f"{source} is nested too deeply") from None


def read_yaml_file(path: Path, what: str) -> Any:
    """The YAML document in ``path`` (``what`` names it in errors: "config file"); every
    failure to read or parse it is a ConfigError."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError("", f"cannot read {what} {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{path} is not UTF-8 text: {exc.reason}") from None
    return parse_yaml(text, str(path))


def load_settings(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read, substitute, override and validate; raises ConfigError naming the failing key."""
    env = os.environ if env is None else env
    config_path = Path(path or env.get("DNFT_CONFIG") or DEFAULT_CONFIG_PATH)
    raw = read_yaml_file(config_path, "config file")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("", f"{config_path} must hold a mapping at the top level")
    return settings_from_mapping(raw, env, base_dir=config_path.parent)


def settings_from_mapping(
    raw: dict[str, Any], env: Mapping[str, str], base_dir: Path | None = None
) -> Settings:
    data = _substitute(raw, env, "", (), [MAX_CONFIG_VALUES])
    apply_env_overrides(data, env)
    if base_dir is not None:
        _resolve_paths(data, base_dir)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key, message = _format_loc(error["loc"], data), error["msg"]
        if not key:
            # Cross-section checks see the whole file; their messages start with the key.
            leading = _LEADING_KEY.fullmatch(message.removeprefix("Value error, "))
            if leading:
                key, message = leading.group(1), leading.group(2)
        raise ConfigError(key, message) from None


def _substitute(
    value: Any, env: Mapping[str, str], key: str, parents: tuple[int, ...], budget: list[int]
) -> Any:
    """A copy of ``value`` with ``${VAR}`` replaced; refuses alias cycles and expansion bombs.

    ``parents`` holds the ids of the enclosing containers; ``budget`` the values left to visit.
    """
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(key, f"more than {MAX_CONFIG_VALUES} values (YAML aliases expanding?)")
    if isinstance(value, dict | list):
        if id(value) in parents:
            raise ConfigError(key, "contains itself (a YAML alias cycle)")
        parents = (*parents, id(value))
    if isinstance(value, dict):
        return {
            k: _substitute(v, env, f"{key}.{k}" if key else str(k), parents, budget)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, env, f"{key}[{i}]", parents, budget) for i, v in enumerate(value)]
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(key, f"environment variable {name} is not set")

        return _ENV_REF.sub(replace, value)
    return value


_TOP_LEVEL_SCALARS = frozenset({"log_level"})


def apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """Apply ``DNFT_A__B=value`` overrides in place (sorted, so the result is deterministic)."""
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        segments = [s.lower() for s in name[len(ENV_PREFIX) :].split("__")]
        if len(segments) == 1:
            # DNFT_FOO without "__" overrides only a top-level scalar such as DNFT_LOG_LEVEL;
            # other such names stay free for ${DNFT_...} substitution in the YAML.
            if segments[0] not in _TOP_LEVEL_SCALARS:
                continue
        elif segments[0] not in Settings.model_fields:
            raise ConfigError(
                segments[0],
                f"{name}: unknown settings section {segments[0]!r}"
                f" (known: {sorted(Settings.model_fields)})",
            )
        value = parse_yaml(env[name], name, ".".join(segments))
        _set_path(data, segments, value, name)


def _set_path(data: Any, segments: list[str], value: Any, env_name: str) -> None:
    node = data
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        key_so_far = ".".join(segments[: i + 1])
        if isinstance(node, list):
            index = _list_index(node, segment)
            if index is None:
                raise ConfigError(key_so_far, f"{env_name}: no list item named {segment!r}")
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[segment] = value
            else:
                node = node.setdefault(segment, {})
        else:
            raise ConfigError(key_so_far, f"{env_name}: cannot override inside a scalar")


def _list_index(items: list[Any], segment: str) -> int | None:
    for i, item in enumerate(items):
        if isinstance(item, dict) and segment in (
            str(item.get("name", "")).lower(),
            str(item.get("id", "")).lower(),
        ):
            return i
    if segment.isdigit() and int(segment) < len(items):
        return int(segment)
    return None


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Relative ABI and collection paths are relative to the config file, not the cwd."""
    for section, field in (("contracts", "abi"), ("collections", "file")):
        items = data.get(section)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get(field), str):
                p = Path(item[field])
                if not p.is_absolute():
                    item[field] = str(base_dir / p)


def _format_loc(loc: tuple[int | str, ...], data: Any) -> str:
    """``('networks', 0, 'rpc_urls')`` -> ``networks[local].rpc_urls``: name items, not indices."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            label = str(part)
            if isinstance(node, list) and part < len(node):
                node = node[part]
                if isinstance(node, dict):
                    label = str(node.get("name") or node.get("id") or part)
            parts.append(f"[{label}]")
        else:
            # Discriminated unions add the tag (e.g. 'http') to the path: skip it.
            if isinstance(node, dict) and part not in node and part == node.get("kind"):
                continue
            parts.append(f".{part}" if parts else part)
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts)
