"""LoRA weights on the diffusion renderer: a tiny LoRA, trained by nobody but built here with
peft for the tiny random-weight pipeline, saved with diffusers' ``save_lora_weights`` inside
the model directory and loaded back through the collection's ``renderer.lora``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dnft.collection import collection_from_mapping
from dnft.errors import ConfigError
from regenerator import renderer_for
from regenerator.renderers import ModelLoadError, RenderRequest, RenderResult
from regenerator.renderers.base import ParamValue
from regenerator.renderers.diffusion import DiffusionRenderer
from tests.support.tiny_pipeline import save_tiny_pipeline

pytest.importorskip("peft", reason="LoRA needs peft (the `render` extra installs it)")

SIZE = 32
FAST: dict[str, ParamValue] = {"steps": 2, "guidance_scale": 5.0, "mode": "txt2img"}
LORA_FILE = "styles/ink.safetensors"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def write_lora(model_dir: Path, relative: str) -> Path:
    """Add a rank-4 LoRA with random (non-zero) weights to the UNet's attention projections
    of the pipeline in ``model_dir`` and save only the adapter, in diffusers' format."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe: Any = StableDiffusionPipeline.from_pretrained(  # type: ignore[no-untyped-call]  # diffusers is unannotated
        str(model_dir), local_files_only=True
    )
    pipe.unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    torch.manual_seed(7)
    with torch.no_grad():
        for name, param in pipe.unet.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn_like(param) * 0.5)
    target = model_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        str(target.parent),
        unet_lora_layers=get_peft_model_state_dict(pipe.unet),
        weight_name=target.name,
        safe_serialization=True,
    )
    return target


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "model", (8, 16))
    write_lora(directory, LORA_FILE)
    return directory


def request(seed: int = 1) -> RenderRequest:
    return RenderRequest(
        token_id=1,
        traits={"mood": "calm"},
        stage="egg",
        bucket="none",
        seed=seed,
        prompt="a calm cat in the garden",
        size=SIZE,
        params=FAST,
    )


def pixels(result: RenderResult) -> np.ndarray[Any, np.dtype[np.int16]]:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(result.png)).convert("RGB"), dtype=np.int16)


def collection(model_dir: Path, lora: str | None) -> dict[str, Any]:
    renderer: dict[str, Any] = {"kind": "diffusion", "model_dir": str(model_dir), "params": FAST}
    if lora is not None:
        renderer["lora"] = lora
    return {
        "name": "styled",
        "contract": "collection",
        "salt": "s",
        "traits": [{"name": "fed", "event": "Fed", "reduce": "count"}],
        "stages": {"trait": "fed", "levels": [{"min": 0, "name": "egg"}]},
        "prompt": "a {stage}",
        "image_size": 64,
        "renderer": renderer,
    }


class TestLora:
    """A collection's LoRA is loaded with diffusers, changes the art and is in provenance."""

    def test_lora_changes_the_output_and_is_recorded(self, model_dir: Path) -> None:
        plain = DiffusionRenderer.load(model_dir, threads=1)
        styled = DiffusionRenderer.load(model_dir, threads=1, lora=model_dir / LORA_FILE)
        a, b = plain.render(request()), styled.render(request())
        diff = float(np.abs(pixels(a) - pixels(b)).mean())
        assert diff > 3.0, f"the LoRA barely changed the image (mean diff {diff:.2f})"
        expected = hashlib.sha256((model_dir / LORA_FILE).read_bytes()).hexdigest()
        assert b.provenance["lora_sha256"] == expected
        assert b.provenance["lora"] == str(model_dir / LORA_FILE)
        assert a.provenance["lora_sha256"] is None
        # Same seed, same LoRA: the same image (within the CPU tolerance of FACTS.md).
        again = styled.render(request())
        assert int(np.abs(pixels(again) - pixels(b)).max()) <= 2

    def test_collection_names_the_lora(self, model_dir: Path) -> None:
        renderer = renderer_for(collection_from_mapping(collection(model_dir, LORA_FILE)))
        assert isinstance(renderer, DiffusionRenderer)
        assert (
            renderer.lora_sha256 == hashlib.sha256((model_dir / LORA_FILE).read_bytes()).hexdigest()
        )

    def test_missing_lora_fails_at_load(self, model_dir: Path) -> None:
        with pytest.raises(ModelLoadError, match="do not exist"):
            renderer_for(collection_from_mapping(collection(model_dir, "styles/none.safetensors")))

    def test_corrupt_lora_fails_at_load(self, model_dir: Path, tmp_path: Path) -> None:
        broken = model_dir / "styles" / "broken.safetensors"
        broken.write_bytes((model_dir / LORA_FILE).read_bytes()[:-10])
        try:
            with pytest.raises(ModelLoadError, match="truncated"):
                DiffusionRenderer.load(model_dir, threads=1, lora=broken)
        finally:
            broken.unlink()

    @pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.safetensors", "a/../../b"])
    def test_lora_must_stay_inside_the_model_dir(self, model_dir: Path, bad: str) -> None:
        with pytest.raises(ConfigError, match=r"renderer\.lora"):
            collection_from_mapping(collection(model_dir, bad))
