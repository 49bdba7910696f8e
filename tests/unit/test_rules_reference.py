"""docs/rules.md is generated from the rules models and reducers, and current."""

from __future__ import annotations

from tests.support.scripts import load_script

rules_reference = load_script("rules_reference")


class TestRulesReference:
    def test_doc_is_current(self) -> None:
        assert rules_reference.DOC.read_text(encoding="utf-8") == rules_reference.reference(), (
            "docs/rules.md is out of date: run `.venv/bin/python scripts/rules_reference.py`"
        )

    def test_every_key_is_described(self) -> None:
        for model, described in rules_reference.DESCRIPTIONS.items():
            assert set(described) == set(model.model_fields), model.__name__

    def test_every_reducer_is_listed(self) -> None:
        from dnft.collection.reducers import REDUCERS

        text = rules_reference.reference()
        for name in REDUCERS:
            assert f"| `{name}` |" in text
