-- Things, static thing groups and group membership, mirrored column for column by
-- migrations/postgres/0003_things.sql (which adds COLLATE "C" to ordered columns).
--
-- Attributes live in tables of their own so ListThings can filter on them through an
-- index. Foreign keys guard the relations (the writer connection enforces them); the
-- engine deletes children explicitly before their parent, so none cascades.

CREATE TABLE things (
    account_id         TEXT   NOT NULL,
    region             TEXT   NOT NULL,
    name               TEXT   NOT NULL,
    id                 TEXT   NOT NULL,
    arn                TEXT   NOT NULL,
    thing_type_name    TEXT,
    billing_group_name TEXT,
    version            BIGINT NOT NULL,
    created_at_ms      BIGINT NOT NULL,
    updated_at_ms      BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name)
);

-- Serves ListThings filtered by thing type in name order.
CREATE INDEX things_by_type ON things (account_id, region, thing_type_name, name);

CREATE TABLE thing_attributes (
    account_id TEXT NOT NULL,
    region     TEXT NOT NULL,
    thing_name TEXT NOT NULL,
    attr_name  TEXT NOT NULL,
    attr_value TEXT NOT NULL,
    PRIMARY KEY (account_id, region, thing_name, attr_name),
    FOREIGN KEY (account_id, region, thing_name) REFERENCES things (account_id, region, name)
);

-- Serves ListThings filtered by an attribute (exact value or value prefix).
CREATE INDEX thing_attributes_by_value
    ON thing_attributes (account_id, region, attr_name, attr_value, thing_name);

-- A group's parent and root never change after creation (AWS does not allow it), so
-- the hierarchy below is written once per group and only read afterwards.
CREATE TABLE thing_groups (
    account_id    TEXT   NOT NULL,
    region        TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    id            TEXT   NOT NULL,
    arn           TEXT   NOT NULL,
    parent_name   TEXT,
    root_name     TEXT   NOT NULL,
    description   TEXT,
    version       BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name),
    FOREIGN KEY (account_id, region, parent_name) REFERENCES thing_groups (account_id, region, name)
);

-- Serves listing a group's direct children and the "has child groups" check.
CREATE INDEX thing_groups_by_parent ON thing_groups (account_id, region, parent_name, name);

CREATE TABLE thing_group_attributes (
    account_id TEXT NOT NULL,
    region     TEXT NOT NULL,
    group_name TEXT NOT NULL,
    attr_name  TEXT NOT NULL,
    attr_value TEXT NOT NULL,
    PRIMARY KEY (account_id, region, group_name, attr_name),
    FOREIGN KEY (account_id, region, group_name) REFERENCES thing_groups (account_id, region, name)
);

-- Closure of the hierarchy: one row per group and each of its ancestors, itself
-- included at depth 0. Descendant listings and recursive membership listings become
-- one index range instead of a walk.
CREATE TABLE thing_group_tree (
    account_id    TEXT    NOT NULL,
    region        TEXT    NOT NULL,
    ancestor_name TEXT    NOT NULL,
    group_name    TEXT    NOT NULL,
    depth         INTEGER NOT NULL,
    PRIMARY KEY (account_id, region, ancestor_name, group_name),
    FOREIGN KEY (account_id, region, group_name) REFERENCES thing_groups (account_id, region, name)
);

-- Serves a group's ancestors, ordered by distance.
CREATE INDEX thing_group_tree_by_group ON thing_group_tree (account_id, region, group_name, depth);

-- root_name is the group's hierarchy root, copied here so that "at most one group per
-- hierarchy" is also a unique key, whatever happens concurrently.
CREATE TABLE thing_group_members (
    account_id TEXT NOT NULL,
    region     TEXT NOT NULL,
    thing_name TEXT NOT NULL,
    group_name TEXT NOT NULL,
    root_name  TEXT NOT NULL,
    PRIMARY KEY (account_id, region, thing_name, group_name),
    UNIQUE (account_id, region, thing_name, root_name),
    FOREIGN KEY (account_id, region, thing_name) REFERENCES things (account_id, region, name),
    FOREIGN KEY (account_id, region, group_name) REFERENCES thing_groups (account_id, region, name)
);

-- Serves ListThingsInThingGroup and deleting a group's memberships.
CREATE INDEX thing_group_members_by_group
    ON thing_group_members (account_id, region, group_name, thing_name);
