"""The README's configuration reference is generated from the settings models and current."""

from __future__ import annotations

import pytest

from tests.support.scripts import load_script

config_reference = load_script("config_reference")


class TestConfigReference:
    """Every settings key appears with its default, and README.md holds the current block."""

    def test_readme_is_current(self) -> None:
        readme = config_reference.README.read_text(encoding="utf-8")
        assert config_reference.replace_block(readme, config_reference.reference()) == readme, (
            "README.md's configuration reference is out of date: run "
            "`.venv/bin/python scripts/config_reference.py`"
        )

    def test_every_key_of_every_section_is_listed(self) -> None:
        from dnft.config import Settings

        keys = {key for key, _, _ in config_reference.rows(Settings)}
        for section, model in Settings.model_fields.items():
            assert section in keys
            annotation = model.annotation
            for sub in config_reference._models(annotation):
                for name in sub.model_fields:
                    assert any(k.endswith(f".{name}") and k.startswith(section) for k in keys), (
                        f"{section}...{name}"
                    )

    @pytest.mark.parametrize(
        ("key", "default"),
        [
            ("networks[].max_block_range", "`2000`"),
            ("kafka.topics.chain_events", "`dnft.chain.events.v1`"),
            ("kafka.bootstrap_servers", "**required**"),
            ("networks[].confirmations", "`{'depth': 12}`"),
            ("feeds[]<http>.allow_private_hosts", "`false`"),
            ("regenerator.storage.prefix", '`""`'),
        ],
    )
    def test_defaults(self, key: str, default: str) -> None:
        from dnft.config import Settings

        found = {k: d for k, _, d in config_reference.rows(Settings)}
        assert found[key] == default

    def test_missing_markers_are_an_error(self) -> None:
        with pytest.raises(ValueError, match="config-reference"):
            config_reference.replace_block("no markers here", "x")
