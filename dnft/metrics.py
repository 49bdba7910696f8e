"""Every Prometheus metric dnft exports, declared once with its help text.

Names follow Prometheus conventions: ``dnft_`` prefix, base units in the name (``_seconds``,
``_blocks``, ``_bytes``), ``_total`` for counters. Label values are bounded sets (network,
contract, topic, method, endpoint index, outcome): never token ids or raw URLs.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

registry: CollectorRegistry = REGISTRY

build_info = Info("dnft_build", "dnft version and the daemon running in this process")

# --- Kafka plumbing -------------------------------------------------------------------------
kafka_produce_seconds = Histogram(
    "dnft_kafka_produce_seconds",
    "Time from handing a batch to the producer until the broker acknowledged all of it",
    ["topic"],
    buckets=_LATENCY_BUCKETS,
)
kafka_messages_produced_total = Counter(
    "dnft_kafka_messages_produced_total", "Messages acknowledged by the broker", ["topic"]
)
kafka_messages_consumed_total = Counter(
    "dnft_kafka_messages_consumed_total", "Messages handed to a consumer", ["group", "topic"]
)
kafka_commits_total = Counter(
    "dnft_kafka_commits_total", "Offset commits made by a consumer group", ["group"]
)
kafka_consumer_lag_messages = Gauge(
    "dnft_kafka_consumer_lag_messages",
    "Messages between a group's position and the partition's end offset",
    ["group", "topic", "partition"],
)

stream_dead_letters_total = Counter(
    "dnft_stream_dead_letters_total",
    "Messages a consumer group sent to the dead-letter topic, by reason: invalid (decode "
    "failed), tombstone (no value), handler_error (its handling failed)",
    ["group", "reason"],
)

# --- Indexer --------------------------------------------------------------------------------
indexer_head_block = Gauge("dnft_indexer_head_block", "Latest block the node reported", ["network"])
indexer_indexed_block = Gauge(
    "dnft_indexer_indexed_block",
    "Highest block whose events are in Kafka and checkpointed",
    ["network"],
)
indexer_head_lag_blocks = Gauge(
    "dnft_indexer_head_lag_blocks", "Head block minus indexed block", ["network"]
)
indexer_head_lag_seconds = Gauge(
    "dnft_indexer_head_lag_seconds", "Now minus the timestamp of the indexed block", ["network"]
)
indexer_logs_total = Counter(
    "dnft_indexer_logs_total", "Event logs published to Kafka", ["network", "contract"]
)
indexer_undecodable_logs_total = Counter(
    "dnft_indexer_undecodable_logs_total",
    "Logs with a configured event's topic0 that do not match its ABI (skipped)",
    ["network", "contract"],
)
indexer_head_to_kafka_seconds = Histogram(
    "dnft_indexer_head_to_kafka_seconds",
    "From a new head's notification to Kafka acknowledging its events",
    ["network"],
    buckets=_LATENCY_BUCKETS,
)
indexer_rpc_request_seconds = Histogram(
    "dnft_indexer_rpc_request_seconds",
    "JSON-RPC request latency",
    ["network", "method", "endpoint"],
    buckets=_LATENCY_BUCKETS,
)
indexer_rpc_errors_total = Counter(
    "dnft_indexer_rpc_errors_total",
    "JSON-RPC requests that failed, by kind",
    ["network", "method", "endpoint", "kind"],
)
indexer_reorgs_total = Counter(
    "dnft_indexer_reorgs_total", "Chain reorganisations handled", ["network"]
)
indexer_reorg_depth_blocks = Histogram(
    "dnft_indexer_reorg_depth_blocks",
    "Depth of handled reorganisations",
    ["network"],
    buckets=(1, 2, 3, 4, 5, 8, 16, 32, 64, 128),
)
indexer_reorg_beyond_window = Gauge(
    "dnft_indexer_reorg_beyond_window",
    "1 when a reorg deeper than the window stopped the indexer",
    ["network"],
)
indexer_following_head = Gauge(
    "dnft_indexer_following_head",
    "1 while the indexer follows the head (realtime), 0 during backfill or standby",
    ["network"],
)
indexer_backfill_remaining_blocks = Gauge(
    "dnft_indexer_backfill_remaining_blocks",
    "Blocks left before backfill reaches the target",
    ["network"],
)

# --- Regenerator -----------------------------------------------------------------------------
regen_events_total = Counter(
    "dnft_regenerator_events_total",
    "Messages the planner applied, by kind and outcome (applied, duplicate, ignored)",
    ["kind", "outcome"],
)
regen_jobs_planned_total = Counter(
    "dnft_regenerator_jobs_planned_total",
    "Render jobs planned (a token state changed)",
    ["collection"],
)
renders_total = Counter(
    "dnft_renders_total",
    "Render jobs by outcome: rendered (public), copied (back in an earlier state: its version "
    "copied, nothing rendered), pending (held for review), guardrail_failed "
    "(every attempt failed), stale (state moved on), failed",
    ["collection", "outcome"],
)
guardrail_rejections_total = Counter(
    "dnft_guardrail_rejections_total",
    "Renders refused by a guardrail, by check: format, size, blank, near_duplicate, metadata",
    ["collection", "check"],
)
api_curate_auth_failures_total = Counter(
    "dnft_api_curate_auth_failures_total",
    "Requests under /curate refused for missing or wrong credentials",
)
curation_decisions_total = Counter(
    "dnft_curation_decisions_total",
    "Curator decisions by action (approve, reject, reroll) and whether they changed anything",
    ["action", "changed"],
)
render_seconds = Histogram(
    "dnft_render_seconds",
    "Time to render one image",
    ["renderer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
plan_to_metadata_seconds = Histogram(
    "dnft_plan_to_metadata_seconds",
    "From planning a render job to its new version's metadata being stored",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

# --- Metadata API and gallery ----------------------------------------------------------------
api_requests_total = Counter(
    "dnft_api_requests_total",
    "HTTP requests `dnft api` answered, by route template (unmatched for none) and status",
    ["route", "status"],
)
api_request_seconds = Histogram(
    "dnft_api_request_seconds",
    "Time to answer an HTTP request (for live streams: until the stream is open)",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
api_rate_limited_total = Counter(
    "dnft_api_rate_limited_total", "Requests refused with 429 by the per-client rate limit"
)
api_live_clients = Gauge("dnft_api_live_clients", "Open server-sent event streams (gallery pages)")
api_live_events_total = Counter(
    "dnft_api_live_events_total", "New versions sent to open server-sent event streams"
)

# --- Daemon lifecycle ----------------------------------------------------------------------
daemon_ready = Gauge("dnft_daemon_ready", "1 while the daemon reports ready", ["daemon"])
daemon_leader = Gauge(
    "dnft_daemon_leader", "1 while this replica holds its singleton lock", ["daemon", "scope"]
)

# --- Oracle feeds ---------------------------------------------------------------------------
oracle_observations_total = Counter(
    "dnft_oracle_observations_total",
    "Feed readings by outcome: accepted, or the reason they were refused",
    ["feed", "outcome"],
)
oracle_publishes_total = Counter(
    "dnft_oracle_publishes_total",
    "Observations acknowledged by Kafka, by why they were published"
    " (first, deviation, heartbeat, recovered)",
    ["feed", "reason"],
)
oracle_last_value = Gauge(
    "dnft_oracle_last_value",
    "Last published value (a float here; messages carry the exact decimal)",
    ["feed"],
)
oracle_round = Gauge("dnft_oracle_round", "Round id of the last published observation", ["feed"])
oracle_value_age_seconds = Gauge(
    "dnft_oracle_value_age_seconds",
    "Seconds since the observation time of the feed's last accepted reading",
    ["feed"],
)
oracle_stale_after_seconds = Gauge(
    "dnft_oracle_stale_after_seconds",
    "Value age beyond which the feed counts as stale (the alert threshold)",
    ["feed"],
)
oracle_request_seconds = Histogram(
    "dnft_oracle_request_seconds",
    "Duration of one feed read: an HTTP request (redirects and body included) or the"
    " aggregator's JSON-RPC calls",
    ["feed"],
    buckets=_LATENCY_BUCKETS,
)

# --- Pusher ---------------------------------------------------------------------------------
pusher_pending_updates = Gauge(
    "dnft_pusher_pending_updates",
    "Metadata updates recorded in the outbox but not yet confirmed on chain",
)
pusher_oldest_pending_seconds = Gauge(
    "dnft_pusher_oldest_pending_seconds",
    "Age of the oldest unconfirmed update (from its created_at; 0 when none)",
)
pusher_transactions_total = Counter(
    "dnft_pusher_transactions_total",
    "Pusher transactions by outcome: sent, confirmed, failed, replaced (fee bump)",
    ["outcome"],
)
pusher_gas_spent_wei_total = Counter(
    "dnft_pusher_gas_spent_wei_total",
    "gasUsed * effectiveGasPrice of confirmed pushes, in wei",
)
pusher_push_latency_seconds = Histogram(
    "dnft_pusher_push_latency_seconds",
    "From an update's created_at to its push being confirmed on chain",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
pusher_signer_balance_wei = Gauge(
    "dnft_pusher_signer_balance_wei",
    "Balance of the pusher's signer account on a network, in wei",
    ["network"],
)

# --- Leader leases (issue 17, leases that end) ----------------------------------------------
leader_lease_lost_total = Counter(
    "dnft_leader_lease_lost_total",
    "Leader leases lost by this replica (heartbeat failed, lease ran out, session ended)",
    ["daemon", "scope"],
)

# --- Issue 17B: the pusher trusts Postgres ----------------------------------------------------
pusher_updates_refused_total = Counter(
    "dnft_pusher_updates_refused_total",
    "Metadata updates from Kafka the pusher refused, by reason: unknown_version (no such "
    "version recorded for a collection bound to the contract), cid_mismatch (another CID), "
    "superseded (older than a version of the token already recorded: a URI rollback)",
    ["reason"],
)

# --- Issue 17E: public API hardening ----------------------------------------------------------
api_curate_logins_refused_total = Counter(
    "dnft_api_curate_logins_refused_total",
    "/curate logins refused before any password check, by reason: throttled (too many failed "
    "logins from the client or from everybody: 429), busy (password checks queue full: 503)",
    ["reason"],
)
api_live_refused_total = Counter(
    "dnft_api_live_refused_total",
    "Server-sent event streams refused, by reason: per_client (the client's cap: 429), "
    "replica (this replica's cap: 503)",
    ["reason"],
)
api_unavailable_total = Counter(
    "dnft_api_unavailable_total",
    "Requests answered 5xx with a generic body (the detail is logged with the request id)",
    ["code"],
)

# --- Bounds at the edge (issue 17: indexer value cuts) --------------------------------------
indexer_values_cut_total = Counter(
    "dnft_indexer_values_cut_total",
    "Event argument values cut to networks[].max_value_bytes / max_array_items (the event is"
    " published with the full values' sha256 and sizes in its 'truncated' property)",
    ["network", "event"],
)

# --- Issue 18R: richer collection rules (CEL where: conditions and computed traits) -----------
rules_eval_errors_total = Counter(
    "dnft_rules_eval_errors_total",
    "CEL evaluations that failed at runtime (type error, division by zero, overflow, missing "
    "argument), by collection, trait and part: where (the event does not match) or expr (the "
    "computed trait takes its default)",
    ["collection", "trait", "part"],
)

# --- Issue 18F: finality holds (pusher.collections[].announce_after) -------------------------
pusher_updates_held = Gauge(
    "dnft_pusher_updates_held",
    "Metadata updates waiting for their chain events to reach the collection's announce_after "
    "finality (safe / finalized), per network and contract, as of the last planning pass",
    ["network", "contract"],
)
pusher_updates_dropped_total = Counter(
    "dnft_pusher_updates_dropped_total",
    "Held metadata updates never announced, by reason: superseded (a newer version of the "
    "token exists) or retracted (a reorg removed a chain event the version was rendered from)",
    ["reason"],
)

# --- Issue 18 review R1: finality tag reads (pusher.collections[].announce_after) ------------
pusher_tag_errors_total = Counter(
    "dnft_pusher_tag_errors_total",
    "Failed reads of a network's safe / finalized block by the pusher: the targets held for "
    "that tag wait a pass, the others go on; by network and tag",
    ["network", "tag"],
)
