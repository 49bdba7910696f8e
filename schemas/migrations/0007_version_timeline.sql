-- Versions are the token's timeline: every published change of its current state is a new
-- version, including a return to a state it had before (winter -> bear -> winter is three
-- versions; the third copies the first's image and metadata). So (token, state_hash) is no
-- longer unique. What stays unique: the version number per token (the primary key), and no two
-- consecutive versions of a token share a state_hash (inserts check the token's newest
-- version under a per-token lock; `dnft audit` reports a breach as `duplicated`).
alter table token_versions drop constraint token_versions_collection_token_id_state_hash_key;
-- Render workers and curation look up a token's versions of a state.
create index token_versions_state on token_versions (collection, token_id, state_hash);
