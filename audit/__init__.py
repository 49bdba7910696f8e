"""Operator reads across the pipeline: reconcile the chain with Kafka and Postgres, find
repeated side effects, and say where every stage stands. Reads only; commits nothing.

- ``run_audit`` (``audit.run``): chain logs vs the chain-events topic vs ``regen_events``
  over a block range, plus ``audit_versions`` and ``audit_transactions``;
- ``audit.events``: the pure reconcile; ``audit.readers``: the three readers;
- ``collect_status`` (``audit.status``): every stage's lag, for ``dnft status``.
"""

from audit.events import (
    Duplicate,
    EventRef,
    SourceReport,
    StreamState,
    net_events,
    reconcile,
    stored_by_planner,
)
from audit.readers import (
    DEFAULT_MAX_TAIL_S,
    DEFAULT_QUIET_S,
    AuditRangeError,
    ChainRead,
    TopicRead,
    read_chain,
    read_topic,
)
from audit.run import AuditReport, bound_contracts, run_audit
from audit.status import NetworkStatus, Status, collect_status, consumer_groups
from audit.transactions import (
    BATCH_METADATA_UPDATE,
    METADATA_UPDATE,
    URI,
    Announcement,
    TransactionAudit,
    announcement_of,
    audit_transactions,
    classify_transactions,
)
from audit.versions import VersionAudit, VersionRow, audit_versions, classify_versions

__all__ = [
    "BATCH_METADATA_UPDATE",
    "DEFAULT_MAX_TAIL_S",
    "DEFAULT_QUIET_S",
    "METADATA_UPDATE",
    "URI",
    "Announcement",
    "AuditRangeError",
    "AuditReport",
    "ChainRead",
    "Duplicate",
    "EventRef",
    "NetworkStatus",
    "SourceReport",
    "Status",
    "StreamState",
    "TopicRead",
    "TransactionAudit",
    "VersionAudit",
    "VersionRow",
    "announcement_of",
    "audit_transactions",
    "audit_versions",
    "bound_contracts",
    "classify_transactions",
    "classify_versions",
    "collect_status",
    "consumer_groups",
    "net_events",
    "read_chain",
    "read_topic",
    "reconcile",
    "run_audit",
    "stored_by_planner",
]
