-- dnft api: live updates and image lookups.
--
-- Every new version is announced on the channel `dnft_token_versions` (payload: collection,
-- token id as text, version), so each API replica LISTENing there pushes it to the gallery
-- pages open on that token. NOTIFY is sent at commit, so a listener never sees a version it
-- cannot read yet, and only committed versions are announced.
create function dnft_notify_token_version() returns trigger language plpgsql as $$
begin
    perform pg_notify(
        'dnft_token_versions',
        json_build_object(
            'collection', new.collection,
            'token_id', new.token_id::text,
            'version', new.version
        )::text
    );
    return new;
end;
$$;

create trigger token_versions_notify after insert on token_versions
    for each row execute function dnft_notify_token_version();

-- /images/{sha256} serves only images some version names: an index makes that check cheap.
create index token_versions_image on token_versions (image_sha256);
