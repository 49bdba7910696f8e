"""Benchmark: the procedural renderer on one core, and diffusion batching on CPU.

(a) procedural: 512x512 renders of a stream of distinct token states (tokens, stages, buckets,
    moods and feed counts all varying), pinned to one CPU core with one thread; best of three
    rounds. Also the cost of each step and of the PNG settings it uses.
(b) diffusion: the tiny random-weight Stable Diffusion of the tests (tests/support/
    tiny_pipeline.py), built offline and loaded through ``DiffusionRenderer.load``; 8 single
    ``render`` calls against one ``render_batch`` of the same 8 requests, best of three.
(c) GPU: measured only where CUDA is available; otherwise says so.
(d) layers: the sample layers art (scripts/draw_layers_art.py) at 512x512, one core, the same
    stream of distinct token states as (a), best of three: ``render`` as a worker calls it
    (stacks already composited come from the renderer's cache), and every stack composited
    and encoded afresh (cache off: the cost of a stack seen for the first time). Each is also
    printed as a ratio to the procedural renderer of (a), measured in the same run.

Prints per-line figures, then as its last lines ``gpu=``, ``layers_images_per_s=``,
``layers_vs_procedural=``, ``procedural_images_per_s=`` and ``diffusion_batch_vs_single=``.

    .venv/bin/python -m bench.render [--n 300] [--diffusion-size 64] [--steps 4] [--no-diffusion]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from regenerator.renderers import RenderRequest

# One thread for every numeric library: set before any of them is imported, which is why
# numpy, Pillow, torch and the renderers are imported inside the functions below.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
}

MOODS = ("happy", "calm", "sad", "angry", "sleepy", "excited", "")


def best_of(rounds: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(rounds))


def procedural_requests(n: int, size: int = 512) -> list[RenderRequest]:
    from regenerator.renderers import ProceduralRenderer, RenderRequest

    renderer = ProceduralRenderer()
    return [
        RenderRequest(
            token_id=i * 7919 % 10_000,
            traits={"mood": MOODS[i % len(MOODS)], "fed": i % 97},
            stage=renderer.stages[i % len(renderer.stages)],
            bucket=renderer.buckets[(i // 4) % len(renderer.buckets)],
            seed=i * 1_000_003,
            size=size,
        )
        for i in range(n)
    ]


def bench_procedural(n: int) -> float:
    from PIL import Image

    from regenerator.renderers import ProceduralRenderer
    from regenerator.renderers.base import encode_png

    cpu = min(os.sched_getaffinity(0))
    all_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        renderer = ProceduralRenderer()
        requests = procedural_requests(n)
        for request in requests[:24]:  # per-size maps and the first layers
            renderer.render(request)

        def rate() -> float:
            began = time.perf_counter()
            for request in requests:
                renderer.render(request)
            return (time.perf_counter() - began) / n

        per_image = best_of(3, rate)
        scenes = [renderer.scene(r) for r in requests[:100]]
        from regenerator.renderers.procedural import paint

        began = time.perf_counter()
        images = [paint(s) for s in scenes]
        paint_ms = (time.perf_counter() - began) / len(scenes) * 1000
        print(f"(a) procedural 512x512, 1 core, {n} distinct token states, best of 3:")
        print(f"    {1 / per_image:.0f} images/s ({per_image * 1000:.1f} ms each)")
        print(f"    painting pixels: {paint_ms:.1f} ms/image; the rest is PNG + hashing")
        sample = images[:30]
        for level in (0, 1, 2, 3):
            began = time.perf_counter()
            sizes = [len(encode_png(img, level)) for img in sample]
            ms = (time.perf_counter() - began) / len(sample) * 1000
            kib = statistics.mean(sizes) / 1024
            print(f"    PNG (Up filter, ISA-L {level}): {ms:.1f} ms, {kib:.0f} KiB")
        began = time.perf_counter()
        pil_sizes = []
        for img in sample:
            buffer = io.BytesIO()
            Image.fromarray(img).save(buffer, format="PNG", compress_level=1)
            pil_sizes.append(buffer.tell())
        ms = (time.perf_counter() - began) / len(sample) * 1000
        kib = statistics.mean(pil_sizes) / 1024
        print(f"    PNG (Pillow adaptive, zlib 1): {ms:.1f} ms, {kib:.0f} KiB")
        return 1 / per_image
    finally:
        os.sched_setaffinity(0, all_cpus)


def bench_diffusion(size: int, steps: int, device: str) -> float:
    import torch

    from regenerator.renderers import RenderRequest
    from regenerator.renderers.diffusion import DiffusionRenderer
    from tests.support.tiny_pipeline import save_tiny_pipeline

    threads = len(os.sched_getaffinity(0)) if device == "cpu" else 1
    with tempfile.TemporaryDirectory() as tmp:
        model = save_tiny_pipeline(Path(tmp) / "model")
        renderer = DiffusionRenderer.load(
            model, device=device, threads=threads, defaults={"steps": steps, "mode": "txt2img"}
        )
    requests = [
        RenderRequest(
            token_id=i,
            traits={},
            stage="bloom",
            bucket="mid",
            seed=i,
            prompt=f"a {MOODS[i % 6]} flower in the garden",
            size=size,
        )
        for i in range(8)
    ]
    renderer.render_batch(requests[:2])  # warm-up: allocator, kernels

    def singles() -> float:
        began = time.perf_counter()
        for request in requests:
            renderer.render(request)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - began

    def batch() -> float:
        began = time.perf_counter()
        renderer.render_batch(requests)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - began

    single_s, batch_s = best_of(3, singles), best_of(3, batch)
    print(
        f"(b) diffusion tiny SD on {device}, {size}x{size}, {steps} steps, "
        f"{threads} torch thread(s), best of 3:"
    )
    print(f"    8 single calls: {single_s:.2f} s ({8 / single_s:.1f} images/s)")
    print(f"    1 batch of 8:   {batch_s:.2f} s ({8 / batch_s:.1f} images/s)")
    return single_s / batch_s


def layers_requests(n: int, size: int = 512) -> list[RenderRequest]:
    """Distinct token states over the sample art's traits: 3 markets x 3 moods x 2 stages."""
    from regenerator.renderers import RenderRequest

    markets, moods, stages = ("bear", "calm", "bull"), ("calm", "happy", "sleepy"), ("egg", "kid")
    return [
        RenderRequest(
            token_id=i * 7919 % 10_000,
            traits={"fed": i % 97, "mood": moods[i % 3], "market": markets[(i // 3) % 3]},
            stage=stages[(i // 9) % 2],
            bucket=markets[(i // 3) % 3],
            seed=i * 1_000_003,
            size=size,
        )
        for i in range(n)
    ]


def bench_layers(n: int) -> tuple[float, float]:
    """(images/s through ``render``, images/s compositing and encoding every stack afresh)."""
    from regenerator.renderers.base import encode_png, sha256_hex
    from regenerator.renderers.layers import LayersRenderer
    from tests.support.scripts import load_script

    cpu = min(os.sched_getaffinity(0))
    all_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            load_script("draw_layers_art").draw(Path(tmp), size=512, stages=("egg", "kid"))
            began = time.perf_counter()
            renderer = LayersRenderer.load(
                tmp, stages=("egg", "kid"), traits=("fed", "mood", "market"), size=512
            )
            load_ms = (time.perf_counter() - began) * 1000
        requests = layers_requests(n)
        for request in requests[:24]:
            renderer.render(request)

        def cached() -> float:
            began = time.perf_counter()
            for request in requests:
                renderer.render(request)
            return (time.perf_counter() - began) / n

        def fresh() -> float:
            began = time.perf_counter()
            for request in requests:
                pixels = renderer.render_pixels(request)
                sha256_hex(encode_png(pixels))
            return (time.perf_counter() - began) / n

        per_render, per_fresh = best_of(3, cached), best_of(3, fresh)
        layers = len(renderer.picks(requests[0]))
        print(f"(d) layers 512x512 ({layers} layers, 18 stacks), 1 core, {n} token states:")
        print(f"    load and decode the folder: {load_ms:.0f} ms (once per worker)")
        print(f"    render: {1 / per_render:.0f} images/s ({per_render * 1000:.2f} ms each)")
        print(f"    every stack afresh: {1 / per_fresh:.0f} images/s ({per_fresh * 1000:.2f} ms)")
        return 1 / per_render, 1 / per_fresh
    finally:
        os.sched_setaffinity(0, all_cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="procedural renders per round")
    parser.add_argument("--diffusion-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--no-diffusion", action="store_true", help="skip (b) and (c)")
    args = parser.parse_args()
    for name, value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(name, value)

    procedural = bench_procedural(args.n)
    layers, layers_fresh = bench_layers(args.n)
    diffusion = (
        None if args.no_diffusion else bench_diffusion(args.diffusion_size, args.steps, "cpu")
    )

    if diffusion is None:
        print("gpu=skipped")
    else:
        import torch

        if torch.cuda.is_available():
            gpu = bench_diffusion(args.diffusion_size, args.steps, "cuda")
            print(f"gpu={torch.cuda.get_device_name()} diffusion_batch_vs_single_gpu={gpu:.2f}")
        else:
            print("gpu=unavailable")
    print(f"layers_images_per_s={layers:.0f} layers_fresh_images_per_s={layers_fresh:.0f}")
    print(
        f"layers_vs_procedural={layers / procedural:.1f} "
        f"layers_fresh_vs_procedural={layers_fresh / procedural:.1f}"
    )
    print(f"procedural_images_per_s={procedural:.0f}")
    if diffusion is not None:
        print(f"diffusion_batch_vs_single={diffusion:.2f}")


if __name__ == "__main__":
    main()
