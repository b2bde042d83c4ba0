-- Device Defender audit suppressions; mirrored column for column by
-- migrations/postgres/0007_suppressions.sql.
--
-- resource_key is the engine's canonical text of the resource identifier (what findings
-- carry too, so the audit runner matches them by equality); resource_json is the
-- identifier as given, returned by Describe and List.
CREATE TABLE audit_suppressions (
    account_id            TEXT    NOT NULL,
    region                TEXT    NOT NULL,
    check_name            TEXT    NOT NULL,
    resource_key          TEXT    NOT NULL,
    resource_json         TEXT    NOT NULL,
    -- NULL exactly when suppress_indefinitely is set.
    expiration_ms         BIGINT,
    suppress_indefinitely BOOLEAN NOT NULL,
    description           TEXT,
    client_request_token  TEXT    NOT NULL,
    created_at_ms         BIGINT  NOT NULL,
    updated_at_ms         BIGINT  NOT NULL,
    PRIMARY KEY (account_id, region, check_name, resource_key)
);

-- A create looks its token up first (a retry returns the suppression it made); unique
-- so no two suppressions of a scope can ever share one.
CREATE UNIQUE INDEX audit_suppressions_by_token
    ON audit_suppressions (account_id, region, client_request_token);
-- No index for the listing order: a scope holds at most the engine's limit of
-- suppressions, and the audit runner reads them by (check, key) through the primary key.
