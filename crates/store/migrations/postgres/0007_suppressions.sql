-- Device Defender audit suppressions; mirrors migrations/sqlite/0007_suppressions.sql
-- column for column (see there for the why of each column and index). Text compares in
-- byte order (COLLATE "C") as on SQLite.
CREATE TABLE audit_suppressions (
    account_id            TEXT COLLATE "C" NOT NULL,
    region                TEXT COLLATE "C" NOT NULL,
    check_name            TEXT COLLATE "C" NOT NULL,
    resource_key          TEXT COLLATE "C" NOT NULL,
    resource_json         TEXT COLLATE "C" NOT NULL,
    expiration_ms         BIGINT,
    suppress_indefinitely BOOLEAN NOT NULL,
    description           TEXT COLLATE "C",
    client_request_token  TEXT COLLATE "C" NOT NULL,
    created_at_ms         BIGINT NOT NULL,
    updated_at_ms         BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, check_name, resource_key)
);

CREATE UNIQUE INDEX audit_suppressions_by_token
    ON audit_suppressions (account_id, region, client_request_token);
