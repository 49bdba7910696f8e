-- Oracle state: per feed, the last round Kafka acknowledged and the one being published.
--
-- Publishing is three steps, and a crash between any two is safe:
--   1. record the intent: pending_round_id = round_id + 1 with the exact message bytes;
--   2. send those bytes to Kafka and wait for the acknowledgement;
--   3. commit: the pending round becomes the last published one, the intent is cleared.
-- A restart that finds an intent re-sends the same bytes (same round id) before anything
-- else, then commits. So every recorded round reaches Kafka, a round id is never reused for
-- another value, and the only possible duplicate is byte-identical: consumers keep the
-- first message of each (feed_id, round_id).
create table oracle_feed_state (
    feed_id              text primary key,
    round_id             bigint not null default 0,   -- 0: nothing published yet
    value                numeric,
    observed_at          timestamptz,
    published_at         timestamptz,
    pending_round_id     bigint,
    pending_value        numeric,
    pending_observed_at  timestamptz,
    pending_published_at timestamptz,
    pending_message      bytea,
    updated_at           timestamptz not null default now(),
    constraint oracle_pending_is_next_round
        check (pending_round_id is null or pending_round_id = round_id + 1),
    constraint oracle_pending_complete
        check ((pending_round_id is null) = (pending_message is null))
);
