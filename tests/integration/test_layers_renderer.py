"""``renderer: {kind: layers}`` and a plugin kind through the real planner, Kafka and render
worker: a token evolves, a trait change swaps its layer, and the stored versions are what a
fresh composite of the art folder gives."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from PIL import Image

from regenerator import verify_version
from regenerator.renderers.layers import LayersRenderer
from tests.support.messages import event
from tests.support.regenerator import VersionMakerFor
from tests.support.rules import RULES
from tests.support.scripts import load_script

SIZE = 128


def _pixels(png: bytes) -> npt.NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _provenance(record: Any) -> dict[str, Any]:
    """What the renderer recorded, as stored in the version's metadata."""
    return dict(orjson.loads(record["metadata"])["provenance"]["render"])


class TestLayersThroughTheWorker:
    async def test_a_trait_change_swaps_a_layer(
        self, version_maker_for: VersionMakerFor, tmp_path: Path
    ) -> None:
        art = tmp_path / "art"
        load_script("draw_layers_art").draw(art, size=SIZE, stages=("egg", "kid"))
        rules = RULES | {"image_size": SIZE, "renderer": {"kind": "layers", "dir": str(art)}}
        async with version_maker_for(rules, quiet_s=1.0) as flow:
            assert await flow.step([event(1, "Transfer", 1, to="0xaa")]) == [1]
            assert await flow.step([event(2, "TraitSet", 1, key="mood", value="happy")]) == [2]
            first, second = await flow.versions(1)
            one, two = _provenance(first), _provenance(second)
            files = [[layer["file"] for layer in p["layers"]] for p in (one, two)]
            # No mood yet: the manifest's default (calm); then happy. Nothing else changes.
            assert files[0] == [
                "bg-calm.png",
                "body.png",
                "mood-calm.png",
                "glow.png",
                "shadow.png",
            ]
            assert files[1] == [
                "bg-calm.png",
                "body.png",
                "mood-happy.png",
                "glow.png",
                "shadow.png",
            ]
            old, new = flow.store.get(first["image_sha256"]), flow.store.get(second["image_sha256"])
            changed = (_pixels(old) != _pixels(new)).any(axis=2)
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            # Only the mood face (a disc of radius 0.06 at the centre) differs.
            assert changed.any()
            assert rows.min() >= 0.43 * SIZE
            assert rows.max() <= 0.57 * SIZE
            assert cols.min() >= 0.43 * SIZE
            assert cols.max() <= 0.57 * SIZE

            # The stored image is a fresh composite of the same folder, byte for byte.
            bound = flow.worker._collections["sample"]
            fresh = LayersRenderer.load(
                art, stages=("egg", "kid"), traits=("fed", "owner", "mood", "market"), size=SIZE
            )
            for version in (1, 2):
                checked = await verify_version(flow.pool, flow.store, bound, fresh, 1, version)
                assert (checked.matches, checked.exact, checked.renderer) == (True, True, "layers")
            assert two["manifest_sha256"] == fresh.manifest_sha256

            # A different folder (another mood face) no longer verifies the stored image.
            (art / "mood-happy.png").write_bytes((art / "mood-sleepy.png").read_bytes())
            edited = LayersRenderer.load(
                art, stages=("egg", "kid"), traits=("fed", "owner", "mood", "market"), size=SIZE
            )
            assert not (await verify_version(flow.pool, flow.store, bound, edited, 1, 2)).matches


class TestPluginThroughTheWorker:
    async def test_example_plugin_renders_versions(
        self, version_maker_for: VersionMakerFor
    ) -> None:
        """The installed example plugin (examples/dnft-renderer-example) as a collection's art."""
        rules = RULES | {"image_size": 64, "renderer": {"kind": "stripes", "stripes": 3}}
        async with version_maker_for(rules, quiet_s=1.0) as flow:
            assert await flow.step([event(1, "Transfer", 1, to="0xaa")]) == [1]
            assert await flow.step([event(2, "TraitSet", 1, key="mood", value="happy")]) == [2]
            first, second = await flow.versions(1)
            assert first["image_sha256"] != second["image_sha256"]
            image = _pixels(flow.store.get(second["image_sha256"]))
            assert image.shape == (64, 64, 3)
            assert len({tuple(row[0]) for row in image}) == 3
            bound = flow.worker._collections["sample"]
            renderer = flow.worker._renderers["sample"]
            assert renderer.name == "stripes"
            checked = await verify_version(flow.pool, flow.store, bound, renderer, 1, 2)
            assert (checked.matches, checked.exact) == (True, True)
