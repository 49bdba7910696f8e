"""On-chain announcement of new metadata versions (``dnft pusher``).

:func:`run_pusher` runs the daemon (:mod:`publisher.pusher.pipeline` assembles it);
:func:`prepare_signers` checks the settings and reads each network's key before anything
starts;
:func:`pusher_pending` is the outbox as ``dnft status`` shows it.
"""

from publisher.pusher.intake import Intake, update_record
from publisher.pusher.outbox import Outbox
from publisher.pusher.pipeline import PusherRuntime, run_pusher
from publisher.pusher.rows import UpdateRecord
from publisher.pusher.sender import ChainPusher, PushTarget
from publisher.pusher.signer import Signer
from publisher.pusher.status import OutboxUnavailable, PusherPending, pusher_pending
from publisher.pusher.targets import (
    load_signer,
    load_signers,
    prepare_signers,
    push_targets,
)

__all__ = [
    "ChainPusher",
    "Intake",
    "Outbox",
    "OutboxUnavailable",
    "PushTarget",
    "PusherPending",
    "PusherRuntime",
    "Signer",
    "UpdateRecord",
    "load_signer",
    "load_signers",
    "prepare_signers",
    "push_targets",
    "pusher_pending",
    "run_pusher",
    "update_record",
]
