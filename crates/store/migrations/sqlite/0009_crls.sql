-- CRLs for the revocation audit checks, and the related resources of audit findings
-- too numerous for the finding's body; mirrored by migrations/postgres/0009_crls.sql.

-- Fetched CRLs (source: the distribution point URL) and imported ones (source derived
-- from the issuer by the engine). Not per account: a CRL is public and is used only
-- after its signature verifies against the issuer's key.
CREATE TABLE crls (
    source                 TEXT    NOT NULL PRIMARY KEY,
    issuer_der             BLOB    NOT NULL,
    crl_der                BLOB    NOT NULL,
    this_update_ms         BIGINT  NOT NULL,
    next_update_ms         BIGINT,
    stored_at_ms           BIGINT  NOT NULL,
    issuer_certificate_der BLOB
);

-- Written before their finding, in batches; the key makes a re-run write nothing twice.
-- No foreign key to audit_findings for the same reason audit_findings has none to
-- audit_tasks; task_id lets the purge remove them task by task.
CREATE TABLE audit_finding_related_resources (
    account_id    TEXT NOT NULL,
    region        TEXT NOT NULL,
    finding_id    TEXT NOT NULL,
    sort_key      TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    resource_json TEXT NOT NULL,
    PRIMARY KEY (account_id, region, finding_id, sort_key)
);

CREATE INDEX audit_finding_related_resources_by_task
    ON audit_finding_related_resources (account_id, region, task_id);
