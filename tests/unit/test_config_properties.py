"""dnft.yaml, DNFT_* overrides and collection rules under random input: a valid model, or a
ConfigError that names the failing key; never another exception (a traceback at start)."""

from __future__ import annotations

import copy
import string
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnft.collection.rules import Collection, collection_from_mapping, load_collection
from dnft.collection.state import TokenState
from dnft.config import Settings, load_settings, settings_from_mapping
from dnft.errors import ConfigError
from dnft.sanitize import PROMPT_ALPHABET
from regenerator.metadata import render_prompt
from tests.support.rules import BEAR_BULL, CALM_MOOD, FED, collection_rules

REPO = Path(__file__).resolve().parents[2]
QUICK = settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values a YAML file or an override can hold, hostile ones included.
YAML_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["", "0x", "${UNSET_VAR}", "${HOME:-x}", "2001-13-01", "[", "{a: b}"])
)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
SECTIONS = sorted(Settings.model_fields)


def base_settings() -> dict[str, Any]:
    return {
        "networks": [{"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}],
        "contracts": [
            {"name": "collection", "network": "local", "address": "0x" + "ab" * 20, "abi": "a.json"}
        ],
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "postgres": {"dsn": "postgresql://dnft@127.0.0.1:5432/dnft"},
        "feeds": [
            {"kind": "http", "id": "p", "url": "https://example.com/p", "value_path": "a.b"},
            {"kind": "http", "id": "q", "url": "https://example.org/q", "value_path": "/c"},
            {"kind": "median", "id": "m", "sources": ["p", "q"], "quorum": 2},
        ],
    }


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``node`` (dict keys and list indexes)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths_of(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += paths_of(value, (*prefix, i))
    return out


def mutate(raw: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> None:
    parent = raw
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


def config_error(fn: Any, *args: Any, **kwargs: Any) -> ConfigError | None:
    """None when ``fn`` succeeds; its ConfigError otherwise (any other exception fails)."""
    try:
        fn(*args, **kwargs)
    except ConfigError as exc:
        return exc
    return None


def hostile_files(tmp_path: Path, cases: dict[str, str | bytes]) -> dict[str, Path]:
    """Each case written to a YAML file of its own (bytes as they are): name -> path."""
    paths = {}
    for name, text in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        paths[name] = path
    return paths


class TestSettingsMappings:
    """A valid config with one value replaced or removed: valid, or an error at that key."""

    def test_base_is_valid(self) -> None:
        assert isinstance(settings_from_mapping(base_settings(), {}), Settings)

    @QUICK
    @given(data=st.data(), value=YAML_VALUES, delete=st.booleans())
    def test_one_value_changed(self, data: st.DataObject, value: Any, delete: bool) -> None:
        raw = base_settings()
        path = data.draw(st.sampled_from(paths_of(raw)))
        mutate(raw, path, value, delete)
        error = config_error(settings_from_mapping, raw, {}, base_dir=Path("/tmp"))
        if error is None:
            return
        # The key names a setting (list items by their name: networks[local].rpc_urls): the
        # changed one, or one that refers to it (contracts[collection].network -> networks).
        assert error.key.split(".")[0].split("[")[0] in SECTIONS, (error.key, error.reason, path)

    @QUICK
    @given(raw=st.dictionaries(st.sampled_from([*SECTIONS, "other"]), YAML_VALUES, max_size=6))
    def test_random_top_level_mappings(self, raw: dict[str, Any]) -> None:
        error = config_error(settings_from_mapping, raw, {}, base_dir=Path("/tmp"))
        assert error is not None  # none of these has the required sections right
        assert str(error)


class TestSettingsFiles:
    """Any text as dnft.yaml: a Settings or a ConfigError."""

    @QUICK
    @given(text=st.text(max_size=300) | YAML_VALUES.map(lambda v: yaml.safe_dump(v)))
    def test_random_text(self, tmp_path_factory: Any, text: str) -> None:
        path = tmp_path_factory.mktemp("cfg") / "dnft.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        assert config_error(load_settings, path, env={}) is not None

    def test_hostile_yaml_files(self, tmp_path: Path) -> None:
        bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"]
        bomb += [
            f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]"
            for p, c in zip("abcdef", "bcdefg", strict=True)
        ]
        cases: dict[str, str | bytes] = {
            "bad date": "log_level: 2001-13-01\n",
            "alias cycle": "networks: &n [*n]\n",
            "alias bomb": "\n".join(bomb) + "\n",
            "flow nesting": "networks: " + "[" * 50_000 + "]" * 50_000 + "\n",
            "not utf-8": b"log_level: \xff\xfe\n",
            "not a mapping": "- a\n- b\n",
        }
        for name, path in hostile_files(tmp_path, cases).items():
            assert config_error(load_settings, path, env={}) is not None, name


class TestEnvOverrides:
    """Any DNFT_* variable: applied, or a ConfigError naming the overridden key."""

    @QUICK
    @given(
        segments=st.lists(
            st.sampled_from([*SECTIONS, "local", "p", "0", "bootstrap_servers", "x"]),
            min_size=1,
            max_size=4,
        ),
        value=st.text(max_size=40) | YAML_SCALARS.map(lambda v: yaml.safe_dump(v)),
    )
    def test_random_overrides(self, segments: list[str], value: str) -> None:
        name = "DNFT_" + "__".join(s.upper() for s in segments)
        error = config_error(settings_from_mapping, base_settings(), {name: value})
        if error is not None and len(segments) > 1 and error.key:
            assert error.key.split(".")[0].split("[")[0] == segments[0], (error.key, name)


SAMPLE: dict[str, Any] = collection_rules(
    FED,
    CALM_MOOD,
    BEAR_BULL,
    salt="sample-v1",
    levels={0: "egg", 3: "big"},
    prompt="a {stage} creature in a {mood} mood, {market} market",
    token_name="Critter #{token_id}",
)
# Templates as people (and typos) write them: braces, attribute access, positions, specs.
TEMPLATE_TEXT = st.text(
    st.sampled_from([*string.ascii_lowercase[:6], " ", "{", "}", ".", "!", ":", "0", "_"]),
    max_size=30,
) | st.sampled_from(
    ["{stage", "}", "{0}", "{}", "{stage.__class__}", "{mood!r}", "{stage:>9}", "{{x}} {stage}"]
)


class TestCollectionRules:
    """Collection rules: a valid collection, or a ConfigError naming the key."""

    @QUICK
    @given(data=st.data(), value=YAML_VALUES, delete=st.booleans())
    def test_one_value_changed(self, data: st.DataObject, value: Any, delete: bool) -> None:
        raw = copy.deepcopy(SAMPLE)
        path = data.draw(st.sampled_from(paths_of(raw)))
        mutate(raw, path, value, delete)
        error = config_error(collection_from_mapping, raw)
        if error is not None:
            assert error.key.startswith("collection")

    @QUICK
    @given(prompt=TEMPLATE_TEXT, token_name=TEMPLATE_TEXT, traits=st.lists(st.text(), max_size=3))
    def test_templates_that_load_always_render(
        self, prompt: str, token_name: str, traits: list[str]
    ) -> None:
        """A prompt or token name is refused at load, or it renders for any trait values."""
        raw = copy.deepcopy(SAMPLE) | {"prompt": prompt, "token_name": token_name}
        error = config_error(collection_from_mapping, raw)
        if error is not None:
            assert error.key in ("collection: prompt", "collection: token_name", "collection")
            return
        collection = collection_from_mapping(raw)
        values = [*traits, "", "", ""][:3]
        state = TokenState(7, dict(zip(["fed", "mood", "market"], values, strict=True)), "egg")
        assert set(render_prompt(collection, state)) <= PROMPT_ALPHABET
        collection.token_name.format(collection=collection.name, token_id=state.token_id)

    def test_hostile_rule_files(self, tmp_path: Path) -> None:
        cases: dict[str, str | bytes] = {
            "bad date": yaml.safe_dump(SAMPLE) + "description: 2001-13-01\n",
            "alias cycle": "traits: &t [*t]\n",
            "flow nesting": "traits: " + "[" * 50_000 + "]" * 50_000 + "\n",
            "not utf-8": b"name: \xff\n",
        }
        for name, path in hostile_files(tmp_path, cases).items():
            assert config_error(load_collection, path) is not None, name

    def test_sample_is_valid(self) -> None:
        assert isinstance(collection_from_mapping(copy.deepcopy(SAMPLE)), Collection)

    def test_sample_collection_still_loads(self) -> None:
        assert isinstance(load_collection(REPO / "collections/sample.yaml"), Collection)
