-- Policies and their versions, what policies are attached to, role aliases, and the
-- account's logging options (v1 and v2 kept apart, as AWS does).

CREATE TABLE policies (
    account_id         TEXT   NOT NULL,
    region             TEXT   NOT NULL,
    name               TEXT   NOT NULL,
    arn                TEXT   NOT NULL,
    default_version_id BIGINT NOT NULL,
    -- The highest version id ever issued for the policy. Kept here rather than derived
    -- from the versions so that a deleted version's id is never issued again.
    last_version_id    BIGINT NOT NULL,
    generation_id      TEXT   NOT NULL,
    created_at_ms      BIGINT NOT NULL,
    updated_at_ms      BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name)
);

CREATE TABLE policy_versions (
    account_id    TEXT   NOT NULL,
    region        TEXT   NOT NULL,
    policy_name   TEXT   NOT NULL,
    version_id    BIGINT NOT NULL,
    document      TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, policy_name, version_id),
    FOREIGN KEY (account_id, region, policy_name) REFERENCES policies (account_id, region, name)
);

-- Targets (certificate, thing group, Cognito identity ARNs) a policy is attached to.
-- Written by AttachPolicy/DetachPolicy once they exist; DeletePolicy already refuses to
-- delete a policy that has a row here. The foreign key makes an attachment and the
-- deletion of its policy exclude each other.
CREATE TABLE policy_attachments (
    account_id     TEXT   NOT NULL,
    region         TEXT   NOT NULL,
    policy_name    TEXT   NOT NULL,
    target         TEXT   NOT NULL,
    attached_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, policy_name, target),
    FOREIGN KEY (account_id, region, policy_name) REFERENCES policies (account_id, region, name)
);

-- For listing the policies attached to one target (ListAttachedPolicies).
CREATE INDEX policy_attachments_by_target
    ON policy_attachments (account_id, region, target, policy_name);

CREATE TABLE role_aliases (
    account_id                  TEXT    NOT NULL,
    region                      TEXT    NOT NULL,
    alias                       TEXT    NOT NULL,
    arn                         TEXT    NOT NULL,
    role_arn                    TEXT    NOT NULL,
    credential_duration_seconds INTEGER NOT NULL,
    created_at_ms               BIGINT  NOT NULL,
    updated_at_ms               BIGINT  NOT NULL,
    PRIMARY KEY (account_id, region, alias)
);

-- At most one row per account and region; no row means "never configured".
CREATE TABLE logging_options (
    account_id    TEXT   NOT NULL,
    region        TEXT   NOT NULL,
    role_arn      TEXT   NOT NULL,
    log_level     TEXT,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, region)
);

CREATE TABLE v2_logging_options (
    account_id           TEXT    NOT NULL,
    region               TEXT    NOT NULL,
    role_arn             TEXT,
    default_log_level    TEXT,
    disable_all_logs     BOOLEAN NOT NULL,
    event_configurations TEXT,
    updated_at_ms        BIGINT  NOT NULL,
    PRIMARY KEY (account_id, region)
);
