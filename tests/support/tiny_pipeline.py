"""A tiny Stable Diffusion pipeline with random weights, built offline and saved to a directory.

Model hubs are unreachable here, so tests and the render bench build the pipeline from configs
(the shapes of diffusers' own test fixtures), write a CLIP tokenizer from a hand-made
``vocab.json`` + ``merges.txt``, and ``save_pretrained`` everything: the renderer then loads it
through the real ``from_pretrained(local_dir)`` path. Building takes well under a second.

In transformers 5, ``CLIPTokenizer(vocab_file=..., merges_file=...)`` silently ignores the files
(FACTS.md): the tokenizer must come from ``from_pretrained(dir)``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

# Small but real enough for batch-vs-single timings; (4, 8) would be the smallest that works.
DEFAULT_CHANNELS = (32, 64)
# Whole-word merges for these, so common prompt words become single tokens.
WORDS = frozenset(
    {"a", "cat", "dog", "flower", "bloom", "seed", "sprout", "radiant", "garden", "night", "day"}
    | {"sun", "moon", "star", "gold", "blue", "red", "green", "calm", "happy", "angry", "sad"}
    | {"painting", "of", "in", "on", "with", "the", "and", "bright", "dark"}
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map (same as transformers')."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def write_clip_tokenizer(directory: Path) -> CLIPTokenizer:
    """Write a small byte-level BPE vocabulary (every byte, a few merges) and load it back."""
    directory.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {"<|startoftext|>": 0, "!": 1, "<|endoftext|>": 2}
    for token in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(token, len(vocab))
    merges: list[str] = []
    for word in sorted(WORDS):
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append(f"{parts[0]} {parts[1]}")
            merged = parts[0] + parts[1]
            vocab.setdefault(merged, len(vocab))
            parts = [merged, *parts[2:]]
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)))
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "!",
                "unk_token": "<|endoftext|>",
            }
        )
    )
    tokenizer: CLIPTokenizer = CLIPTokenizer.from_pretrained(str(directory))
    return tokenizer


def build_tiny_pipeline(
    tokenizer_dir: Path, channels: tuple[int, int] = DEFAULT_CHANNELS, seed: int = 0
) -> StableDiffusionPipeline:
    """A StableDiffusionPipeline with random (seeded) weights; its VAE downsamples by 2.

    The tokenizer files are written to ``tokenizer_dir`` first (the only way to build one
    offline in transformers 5).
    """
    tokenizer = write_clip_tokenizer(tokenizer_dir)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(  # type: ignore[no-untyped-call]  # diffusers is unannotated
        block_out_channels=channels,
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    vae = AutoencoderKL(  # type: ignore[no-untyped-call]  # diffusers is unannotated
        block_out_channels=list(channels),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
    )
    scheduler = DDIMScheduler(  # type: ignore[no-untyped-call]  # diffusers is unannotated
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=64,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=1000,
        )
    )
    return StableDiffusionPipeline(  # type: ignore[no-untyped-call]  # diffusers is unannotated
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(
    directory: Path, channels: tuple[int, int] = DEFAULT_CHANNELS, seed: int = 0
) -> Path:
    """Build the tiny pipeline and ``save_pretrained`` it (safetensors) into ``directory``."""
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        pipe = build_tiny_pipeline(Path(tokenizer_dir), channels, seed)
        pipe.save_pretrained(  # type: ignore[attr-defined]  # a mixin diffusers adds untyped
            str(directory), safe_serialization=True
        )
    return directory
