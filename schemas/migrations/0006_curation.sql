-- Curation: guardrails and a human in the loop before art goes public.
--
-- `token_versions` keeps holding public versions only, numbered 1, 2, 3... per token in the
-- order they became public: every reader of it (API, gallery, live events, pusher, verify)
-- still sees only public art, and a held or rejected render never leaves a gap in a token's
-- public numbering. Every render that did not go straight to `token_versions` is a candidate
-- here: a render that failed a guardrail, one held for review, one rejected or superseded.
create table curation_candidates (
    id              bigserial primary key,
    collection      text not null,
    token_id        numeric(78) not null,
    state_hash      text not null,
    state           jsonb not null,
    -- The render job's seed (a re-roll sends a new one); attempt n rendered with seed + n.
    job_seed        bigint not null,
    seed            bigint not null,
    attempt         integer not null,
    status          text not null check (
        status in ('pending', 'public', 'rejected', 'guardrail_failed', 'superseded')
    ),
    -- [{"check": ..., "reason": ...}]: the guardrails that failed, or why it was superseded.
    reasons         jsonb not null default '[]',
    image_sha256    text,
    image_cid       text,
    metadata_sha256 text,
    metadata_cid    text,
    metadata        jsonb,          -- null when the document failed the schema
    phash           bigint,
    triggered_by    jsonb not null,
    version         integer,        -- its number in token_versions once approved
    created_at      timestamptz not null default now(),
    decided_at      timestamptz,
    -- A job renders once: a re-delivered job finds its attempts here and renders nothing.
    unique (collection, token_id, state_hash, seed)
);
create index curation_candidates_job on curation_candidates (collection, token_id, state_hash, job_seed);
create index curation_candidates_pending on curation_candidates (id) where status = 'pending';
create index curation_candidates_image on curation_candidates (image_sha256);

-- Every curator decision: who, when, what, on which candidate, and what came of it.
create table curation_decisions (
    id           bigserial primary key,
    candidate_id bigint not null references curation_candidates (id),
    action       text not null check (action in ('approve', 'reject', 'reroll')),
    curator      text not null,
    note         text not null default '',
    outcome      text not null,
    decided_at   timestamptz not null default now()
);
create index curation_decisions_candidate on curation_decisions (candidate_id);

-- Each token's current public art by perceptual hash, for the near-duplicate guardrail. The
-- 64-bit hash is also stored as four 16-bit bands, each indexed: hashes within 3 bits share a
-- band (pigeonhole), so a lookup reads only the rows sharing one, never the whole collection.
create table curation_art_hashes (
    collection text not null,
    token_id   numeric(78) not null,
    version    integer not null,
    phash      bigint not null,
    band0      integer not null,
    band1      integer not null,
    band2      integer not null,
    band3      integer not null,
    primary key (collection, token_id)
);
create index curation_art_hashes_b0 on curation_art_hashes (collection, band0);
create index curation_art_hashes_b1 on curation_art_hashes (collection, band1);
create index curation_art_hashes_b2 on curation_art_hashes (collection, band2);
create index curation_art_hashes_b3 on curation_art_hashes (collection, band3);

-- Messages a curator decision must send (the approved version's metadata update, a re-roll's
-- render job), written in the decision's transaction and sent after it commits; an unsent row
-- is re-sent (consumers dedupe metadata updates by (contract, token, version)).
create table curation_outbox (
    id         bigserial primary key,
    topic      text not null check (topic in ('metadata_updates', 'render_jobs')),
    key        text not null,
    body       text not null,      -- the exact message bytes (JSON)
    created_at timestamptz not null default now(),
    sent_at    timestamptz
);
create index curation_outbox_unsent on curation_outbox (id) where sent_at is null;
