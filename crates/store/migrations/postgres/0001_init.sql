-- Initial schema, mirroring migrations/sqlite/0001_init.sql column for column.
--
-- Names, keys and ids compare in byte order (COLLATE "C"), as SQLite's BINARY
-- collation does, so keyset pagination pages identically on both engines whatever
-- the database's locale ("Beta" < "alpha", "-" < "_").

CREATE TABLE credentials (
    access_key_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    secret_access_key TEXT             NOT NULL,
    account_id        TEXT COLLATE "C" NOT NULL,
    created_at_ms     BIGINT           NOT NULL
);

CREATE TABLE mitigation_actions (
    account_id    TEXT COLLATE "C" NOT NULL,
    region        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    arn           TEXT COLLATE "C" NOT NULL,
    action_type   TEXT COLLATE "C" NOT NULL,
    role_arn      TEXT             NOT NULL,
    params_json   TEXT             NOT NULL,
    created_at_ms BIGINT           NOT NULL,
    updated_at_ms BIGINT           NOT NULL,
    PRIMARY KEY (account_id, region, name)
);

-- Serves listing filtered by action type in name order; unfiltered listing walks
-- the primary key.
CREATE INDEX mitigation_actions_by_type
    ON mitigation_actions (account_id, region, action_type, name);

CREATE TABLE resource_tags (
    account_id   TEXT COLLATE "C" NOT NULL,
    region       TEXT COLLATE "C" NOT NULL,
    resource_arn TEXT COLLATE "C" NOT NULL,
    tag_key      TEXT COLLATE "C" NOT NULL,
    tag_value    TEXT             NOT NULL,
    PRIMARY KEY (account_id, region, resource_arn, tag_key)
);

CREATE TABLE server_meta (
    key   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BYTEA            NOT NULL
);
