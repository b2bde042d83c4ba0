-- CRLs for the revocation audit checks, and the related resources of audit findings;
-- mirrors migrations/sqlite/0009_crls.sql (see there for the why). Text compares in byte
-- order (COLLATE "C") as on SQLite.

CREATE TABLE crls (
    source                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    issuer_der             BYTEA  NOT NULL,
    crl_der                BYTEA  NOT NULL,
    this_update_ms         BIGINT NOT NULL,
    next_update_ms         BIGINT,
    stored_at_ms           BIGINT NOT NULL,
    issuer_certificate_der BYTEA
);

CREATE TABLE audit_finding_related_resources (
    account_id    TEXT COLLATE "C" NOT NULL,
    region        TEXT COLLATE "C" NOT NULL,
    finding_id    TEXT COLLATE "C" NOT NULL,
    sort_key      TEXT COLLATE "C" NOT NULL,
    task_id       TEXT COLLATE "C" NOT NULL,
    resource_json TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, region, finding_id, sort_key)
);

CREATE INDEX audit_finding_related_resources_by_task
    ON audit_finding_related_resources (account_id, region, task_id);
