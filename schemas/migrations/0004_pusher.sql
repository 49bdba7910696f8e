-- Pusher outbox: every metadata update to announce, the pushes (on-chain calls) that cover
-- them, and every transaction signed for a push. Rows are written before the step they
-- describe happens (record -> plan -> sign -> broadcast), so after a crash the outbox says
-- exactly what may already be on chain.

-- One row per update, unique by (chain, contract, token, version): a redelivered message is a
-- no-op. push_id is set when a push is planned for it; confirmed_at once that push is final.
create table pusher_updates (
    chain_id     bigint not null,
    contract     text not null,
    token_id     numeric(78) not null,
    version      integer not null,
    metadata_uri text not null,
    metadata_cid text not null,
    created_at   timestamptz not null,
    recorded_at  timestamptz not null default now(),
    push_id      bigint,
    confirmed_at timestamptz,
    failed_at    timestamptz,
    primary key (chain_id, contract, token_id, version)
);
create index pusher_updates_unplanned on pusher_updates (chain_id, contract, recorded_at)
    where push_id is null and failed_at is null;
create index pusher_updates_open on pusher_updates (created_at)
    where confirmed_at is null and failed_at is null;
create index pusher_updates_push on pusher_updates (push_id);

-- One on-chain call announcing some updates: refreshMetadata(first, last) or
-- setTokenURIs(ids, uris). nonce is set with its first signed transaction and kept by every
-- replacement; it is released only when another transaction consumed it and none of ours
-- was mined. state: planned -> sent -> mined -> confirmed | failed (mined -> sent on a reorg).
create table pusher_pushes (
    id               bigserial primary key,
    chain_id         bigint not null,
    contract         text not null,
    sender           text not null,
    mode             text not null check (mode in ('erc4906', 'token-uri')),
    first_token      numeric(78) not null,
    last_token       numeric(78) not null,
    token_count      integer not null,
    calldata         bytea not null,
    state            text not null default 'planned'
                     check (state in ('planned', 'sent', 'mined', 'confirmed', 'failed')),
    nonce            bigint,
    gas_limit        bigint,
    mined_hash       text,
    mined_block      bigint,
    mined_block_hash text,
    gas_used         numeric(78),
    effective_gas_price numeric(78),
    error            text,
    created_at       timestamptz not null default now(),
    confirmed_at     timestamptz,
    unique (chain_id, sender, nonce)
);
create index pusher_pushes_open on pusher_pushes (chain_id, id)
    where state in ('planned', 'sent', 'mined');

-- Every transaction signed for a push (the first and each fee bump), recorded with its raw
-- bytes before it is broadcast: after a crash the same bytes are sent again, never new ones.
-- dropped: its nonce was consumed by a transaction that is not ours.
create table pusher_transactions (
    hash                     text primary key,
    push_id                  bigint not null references pusher_pushes (id),
    nonce                    bigint not null,
    max_fee_per_gas          numeric(78) not null,
    max_priority_fee_per_gas numeric(78) not null,
    raw                      bytea not null,
    signed_at                timestamptz not null default now(),
    broadcast_at             timestamptz,
    dropped                  boolean not null default false
);
create index pusher_transactions_push on pusher_transactions (push_id);
