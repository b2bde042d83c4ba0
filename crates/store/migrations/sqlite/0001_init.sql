-- Initial schema. Kept to plain TEXT/BIGINT types and standard constraints so the
-- PostgreSQL migrations can mirror it closely (BLOB there becomes BYTEA).
--
-- Names, keys and ids are compared in byte order (SQLite's BINARY collation), which
-- keyset pagination relies on; other engines must order the same way (COLLATE "C").

CREATE TABLE credentials (
    access_key_id     TEXT   NOT NULL PRIMARY KEY,
    secret_access_key TEXT   NOT NULL,
    account_id        TEXT   NOT NULL,
    created_at_ms     BIGINT NOT NULL
);

CREATE TABLE mitigation_actions (
    account_id    TEXT   NOT NULL,
    region        TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    id            TEXT   NOT NULL,
    arn           TEXT   NOT NULL,
    action_type   TEXT   NOT NULL,
    role_arn      TEXT   NOT NULL,
    params_json   TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name)
);

-- Serves listing filtered by action type in name order; unfiltered listing walks
-- the primary key.
CREATE INDEX mitigation_actions_by_type
    ON mitigation_actions (account_id, region, action_type, name);

CREATE TABLE resource_tags (
    account_id   TEXT NOT NULL,
    region       TEXT NOT NULL,
    resource_arn TEXT NOT NULL,
    tag_key      TEXT NOT NULL,
    tag_value    TEXT NOT NULL,
    PRIMARY KEY (account_id, region, resource_arn, tag_key)
);

CREATE TABLE server_meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);
