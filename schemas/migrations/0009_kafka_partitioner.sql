-- Which partitioner placed this deployment's keyed records (kafka.partitioner). Producers
-- compare their setting with it at start: switching moves keys to other partitions, which
-- breaks per-token order for records still queued, so it is refused until an operator
-- switches deliberately (docs/runbook.md, "Kafka partitioner").
create table if not exists kafka_partitioner (
    only_row    boolean primary key default true check (only_row),
    name        text not null,
    recorded_at timestamptz not null default now()
);

-- A deployment that ran before this table existed wrote with CRC-32 (the only partitioner
-- then): if it has indexed or planned anything, record that.
insert into kafka_partitioner (name)
select 'crc32'
where exists (select 1 from indexer_checkpoints) or exists (select 1 from regen_events)
on conflict do nothing;
