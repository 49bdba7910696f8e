-- Finality holds (pusher.collections[].announce_after): a version's on-chain announcement
-- waits until the chain events its state follows are safe / finalized (the pusher derives
-- that block from regen_events when it plans). A held update that will never be announced
-- is dropped: a newer version of its token exists ('superseded'), or a reorg retracted an
-- event the version was rendered from ('retracted'). Null for every other update.
alter table pusher_updates
    add column dropped_at timestamptz,
    add column dropped_reason text check (dropped_reason in ('superseded', 'retracted'));
