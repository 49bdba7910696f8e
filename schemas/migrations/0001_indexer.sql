-- Indexer state: where each network's stream stands, and the unfinalized block window.

-- The highest block whose events are all acknowledged by Kafka. Written only after the
-- acknowledgement, so a restart resumes from here and at worst republishes (same event ids).
create table indexer_checkpoints (
    network      text primary key,
    block_number bigint not null,
    block_hash   text not null,
    updated_at   timestamptz not null default now()
);

-- Unfinalized blocks (number -> hash, parent) so a reorg is detected by parentHash even
-- across a restart. Pruned once a block is final.
create table indexer_blocks (
    network     text not null,
    number      bigint not null,
    hash        text not null,
    parent_hash text not null,
    primary key (network, number)
);

-- Events published from unfinalized blocks: what to retract if such a block is orphaned.
-- Kept until the block is final, so a restart between publish and reorg still retracts.
create table indexer_window_events (
    network      text not null,
    block_number bigint not null,
    block_hash   text not null,
    event_id     text not null,
    message_key  text not null,
    retraction   jsonb not null,
    primary key (network, event_id)
);
create index indexer_window_events_block on indexer_window_events (network, block_number);
