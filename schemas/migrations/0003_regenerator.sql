-- Regenerator state: the events and feed values each token's state derives from, the current
-- state, the render jobs planned from it (an outbox), and every version ever rendered.

-- Chain events applied, one row per event id: a duplicate (replay, restart) is a no-op; a
-- retraction deletes the row, and the token's state is recomputed from the rest.
create table regen_events (
    collection      text not null,
    token_id        numeric(78) not null,
    event_id        text not null,
    event           text not null,
    args            jsonb not null,
    block_number    bigint not null,
    log_index       integer not null,
    block_timestamp bigint,
    primary key (collection, event_id)
);
create index regen_events_token on regen_events (collection, token_id);

-- The latest accepted value of each feed (the highest round wins; older rounds are ignored).
create table regen_feed_values (
    feed_id     text primary key,
    round_id    bigint not null,
    value       numeric not null,
    observed_at timestamptz
);

-- Each token's current derived state.
create table regen_tokens (
    collection text not null,
    token_id   numeric(78) not null,
    state      jsonb not null,
    state_hash text not null,
    updated_at timestamptz not null default now(),
    primary key (collection, token_id)
);

-- Render jobs planned for a (token, state); sent_at is set once Kafka acknowledged the job.
-- Planned in the same transaction as the state change, so a crash between planning and
-- sending re-sends on restart instead of losing the job.
create table regen_render_jobs (
    collection   text not null,
    token_id     numeric(78) not null,
    state_hash   text not null,
    seed         bigint not null,
    triggered_by jsonb not null,
    planned_at   timestamptz not null default now(),
    sent_at      timestamptz,
    primary key (collection, token_id, state_hash)
);
create index regen_render_jobs_unsent on regen_render_jobs (planned_at) where sent_at is null;

-- Every version of every token. A state renders once: (token, state_hash) is unique, so a
-- replay or a re-delivered job creates no second version, and a state that comes back after
-- a retraction points at its existing version.
create table token_versions (
    collection      text not null,
    token_id        numeric(78) not null,
    version         integer not null,
    state_hash      text not null,
    state           jsonb not null,
    image_sha256    text not null,
    image_cid       text not null,
    metadata_sha256 text not null,
    metadata_cid    text not null,
    metadata        jsonb not null,
    triggered_by    jsonb not null,
    created_at      timestamptz not null default now(),
    primary key (collection, token_id, version),
    unique (collection, token_id, state_hash)
);
