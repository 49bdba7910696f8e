"""``dnft demo``: the whole engine on local services, with a simulated world to watch.

Starts anvil, tansu and Postgres, deploys the sample collection, mints tokens, replays a real
ETH/USD price series and sends Fed / TraitSet transactions while every dnft daemon runs
(``dnft run --all``). Interactive by default (prints the gallery URL and a status line; Ctrl-C
stops everything); ``--headless --duration S`` runs S seconds and exits 0 only when every token
evolved and ``dnft audit`` is clean. The logic lives in the ``demo`` package.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from dnft.cli.console import Commands, add_command


def register(sub: Commands) -> None:
    parser = add_command(sub, "demo", __doc__, _main)
    parser.add_argument(
        "--headless",
        action="store_true",
        help="no live status; run --duration seconds, then check every token evolved and "
        "`dnft audit` is clean (exit 0 only then)",
    )
    parser.add_argument(
        "--duration", type=float, default=60.0, metavar="S", help="headless run time (60)"
    )
    parser.add_argument(
        "--renderer", choices=("procedural", "diffusion"), default="procedural", help="(procedural)"
    )
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="a local diffusers model directory"
    )
    parser.add_argument("--image-size", type=int, default=512, metavar="PX", help="(512)")
    parser.add_argument("--tokens", type=int, default=20, metavar="N", help="tokens minted (20)")
    parser.add_argument("--holders", type=int, default=4, metavar="K", help="holders (4)")
    parser.add_argument(
        "--day-seconds",
        type=float,
        default=0.25,
        metavar="S",
        help="replay speed: seconds per day of prices (0.25)",
    )
    parser.add_argument(
        "--api-port", type=int, default=None, help="gallery port (8000 when free, else any)"
    )
    parser.add_argument(
        "--down",
        action="store_true",
        help="only stop what an earlier demo in --state-dir left running (it was killed)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="services' data and logs (default: $DNFT_DEMO_STATE_DIR or .dnft/demo)",
    )


def _main(args: argparse.Namespace) -> int:
    from demo.leftovers import clear_leftovers
    from demo.world import DemoOptions, default_state_dir, run_demo

    if args.down:
        clear_leftovers(args.state_dir or default_state_dir(), print)
        return 0
    options = DemoOptions(
        state_dir=args.state_dir or default_state_dir(),
        headless=args.headless,
        duration_s=args.duration,
        renderer=args.renderer,
        model_dir=args.model_dir,
        image_size=args.image_size,
        tokens=args.tokens,
        holders=args.holders,
        day_s=args.day_seconds,
        api_port=args.api_port,
    )
    options.check()
    return asyncio.run(run_demo(options))
