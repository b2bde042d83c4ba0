-- Things, static thing groups and group membership, mirroring
-- migrations/sqlite/0003_things.sql column for column (see there for the why of each
-- table). Names and values compare in byte order (COLLATE "C") so pages, prefixes and
-- keys behave as on SQLite whatever the database's locale.

CREATE TABLE things (
    account_id         TEXT COLLATE "C" NOT NULL,
    region             TEXT COLLATE "C" NOT NULL,
    name               TEXT COLLATE "C" NOT NULL,
    id                 TEXT COLLATE "C" NOT NULL,
    arn                TEXT COLLATE "C" NOT NULL,
    thing_type_name    TEXT COLLATE "C",
    billing_group_name TEXT COLLATE "C",
    version            BIGINT           NOT NULL,
    created_at_ms      BIGINT           NOT NULL,
    updated_at_ms      BIGINT           NOT NULL,
    PRIMARY KEY (account_id, region, name)
);

CREATE INDEX things_by_type ON things (account_id, region, thing_type_name, name);

CREATE TABLE thing_attributes (
    account_id TEXT COLLATE "C" NOT NULL,
    region     TEXT COLLATE "C" NOT NULL,
    thing_name TEXT COLLATE "C" NOT NULL,
    attr_name  TEXT COLLATE "C" NOT NULL,
    attr_value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, region, thing_name, attr_name),
    FOREIGN KEY (account_id, region, thing_name) REFERENCES things (account_id, region, name)
);

CREATE INDEX thing_attributes_by_value
    ON thing_attributes (account_id, region, attr_name, attr_value, thing_name);

CREATE TABLE thing_groups (
    account_id    TEXT COLLATE "C" NOT NULL,
    region        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    arn           TEXT COLLATE "C" NOT NULL,
    parent_name   TEXT COLLATE "C",
    root_name     TEXT COLLATE "C" NOT NULL,
    description   TEXT,
    version       BIGINT           NOT NULL,
    created_at_ms BIGINT           NOT NULL,
    updated_at_ms BIGINT           NOT NULL,
    PRIMARY KEY (account_id, region, name),
    FOREIGN KEY (account_id, region, parent_name) REFERENCES thing_groups (account_id, region, name)
);

CREATE INDEX thing_groups_by_parent ON thing_groups (account_id, region, parent_name, name);

CREATE TABLE thing_group_attributes (
    account_id TEXT COLLATE "C" NOT NULL,
    region     TEXT COLLATE "C" NOT NULL,
    group_name TEXT COLLATE "C" NOT NULL,
    attr_name  TEXT COLLATE "C" NOT NULL,
    attr_value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, region, group_name, attr_name),
    FOREIGN KEY (account_id, region, group_name) REFERENCES thing_groups (account_id, region, name)
);

CREATE TABLE thing_group_tree (
    account_id    TEXT COLLATE "C" NOT NULL,
    region        TEXT COLLATE "C" NOT NULL,
    ancestor_name TEXT COLLATE "C" NOT NULL,
    group_name    TEXT COLLATE "C" NOT NULL,
    depth         INTEGER          NOT NULL,
    PRIMARY KEY (account_id, region, ancestor_name, group_name),
    FOREIGN KEY (account_id, region, group_name) REFERENCES thing_groups (account_id, region, name)
);

CREATE INDEX thing_group_tree_by_group ON thing_group_tree (account_id, region, group_name, depth);

CREATE TABLE thing_group_members (
    account_id TEXT COLLATE "C" NOT NULL,
    region     TEXT COLLATE "C" NOT NULL,
    thing_name TEXT COLLATE "C" NOT NULL,
    group_name TEXT COLLATE "C" NOT NULL,
    root_name  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, region, thing_name, group_name),
    UNIQUE (account_id, region, thing_name, root_name),
    FOREIGN KEY (account_id, region, thing_name) REFERENCES things (account_id, region, name),
    FOREIGN KEY (account_id, region, group_name) REFERENCES thing_groups (account_id, region, name)
);

CREATE INDEX thing_group_members_by_group
    ON thing_group_members (account_id, region, group_name, thing_name);
