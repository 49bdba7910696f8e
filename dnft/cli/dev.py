"""``dnft dev``: start, inspect and stop the local anvil, tansu and Postgres for the demo.

``up`` leaves the services running after it exits; everything later goes through
``STATE_DIR/state.json`` (default ``.dnft/dev``, or ``$DNFT_DEV_STATE_DIR``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dnft.devservices import default_state_dir, down, env_lines, load_state, state_file, status, up


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dev`` command group with ``up``, ``status``, ``down`` and ``env``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where state.json and logs live (default: $DNFT_DEV_STATE_DIR or .dnft/dev)",
    )
    dev = subparsers.add_parser("dev", help="local anvil, Kafka (tansu) and Postgres for the demo")
    actions = dev.add_subparsers(dest="dev_command", metavar="ACTION", required=True)

    up_parser = actions.add_parser("up", parents=[common], help="start all services (detached)")
    up_parser.add_argument(
        "--block-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="mine a block every SECONDS (default: automine, a block per transaction)",
    )
    up_parser.add_argument("--chain-id", type=int, default=31337, help="anvil chain id")
    up_parser.add_argument(
        "--durable-kafka",
        action="store_true",
        help="store Kafka data in a local moto S3 so it survives a broker restart",
    )
    up_parser.set_defaults(func=cmd_up)

    status_parser = actions.add_parser(
        "status", parents=[common], help="one line per service; exit 0 only if all are alive"
    )
    status_parser.set_defaults(func=cmd_status)

    down_parser = actions.add_parser("down", parents=[common], help="stop all and remove the state")
    down_parser.set_defaults(func=cmd_down)

    env_parser = actions.add_parser(
        "env", parents=[common], help='print export lines: eval "$(dnft dev env)"'
    )
    env_parser.set_defaults(func=cmd_env)


def _state_dir(args: argparse.Namespace) -> Path:
    given: Path | None = args.state_dir
    return given if given is not None else default_state_dir()


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    _state, services = up(
        state_dir,
        block_time=args.block_time,
        chain_id=args.chain_id,
        durable_kafka=args.durable_kafka,
    )
    for line in status(state_dir) or []:
        print(line.line())
    timings = ", ".join(
        f"{service.name} {getattr(service, 'ready_seconds', 0.0) or 0.0:.2f} s"
        for service in services
    )
    print(f"ready: {timings}")
    print(f"state: {state_file(state_dir.absolute())}")
    print(f'use:   eval "$(dnft dev env --state-dir {state_dir})"')
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    lines = status(state_dir)
    if lines is None:
        print(f"no dev services recorded in {state_dir}", file=sys.stderr)
        return 1
    for line in lines:
        print(line.line())
    return 0 if all(line.alive for line in lines) else 1


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    stopped = down(state_dir)
    if not stopped:
        print(f"no dev services recorded in {state_dir}")
    else:
        print(f"stopped {', '.join(stopped)}; logs kept in {state_dir / 'logs'}")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    state = load_state(state_dir)
    if state is None:
        print(f"no dev services recorded in {state_dir}: run `dnft dev up` first", file=sys.stderr)
        return 1
    for line in env_lines(state):
        print(line)
    return 0
