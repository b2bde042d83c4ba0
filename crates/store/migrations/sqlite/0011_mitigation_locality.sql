-- Two changes for big audit mitigation actions tasks: the by-task index of findings
-- carries the check, and certificates are split into rows and states.
--
-- StartAuditMitigationActionsTask counts an audit's findings per check (the statistics'
-- totals). Without the check in the index that count read every finding's row, in
-- finding-id order, which is not the order the rows were written in: 3.5 s for a
-- million findings from the page cache, over 40 s from disk. As the index's last column
-- it changes no order and adds a few bytes per finding; the count reads the index alone.

DROP INDEX audit_findings_by_task;
CREATE INDEX audit_findings_by_task
    ON audit_findings (account_id, region, task_id, finding_time_ms, finding_id, check_name);

-- A device certificate's changing state (status, generation id, version, update time)
-- moves out of the wide certificate row into a narrow table ordered by certificate id.
-- Only SQLite: PostgreSQL keeps 0005's shape.
--
-- Why: a mitigation task deactivates certificates in certificate-id order (finding ids
-- start with the certificate's id, and a task takes an audit's findings in id order). In
-- the wide table each row carries its PEM and sits on its own page in insertion order,
-- so a stage of a thousand deactivations dirtied a thousand random pages, each written
-- to the WAL and checkpointed back; in this table a thousand neighbouring ids share a few
-- dozen pages.
--
-- certificate_states takes over the (account_id, region, id) key: it is the only index
-- by id, so adding a certificate still writes one tree with random keys, not two. Each
-- state names its row in certificates (row_id), and every lookup by id goes through it;
-- listings walk certificates in creation order and join the state by id.

CREATE TABLE certificate_states (
    account_id       TEXT    NOT NULL,
    region           TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    generation_id    TEXT    NOT NULL,
    customer_version BIGINT  NOT NULL,
    updated_at_ms    BIGINT  NOT NULL,
    row_id           INTEGER NOT NULL,
    PRIMARY KEY (account_id, region, id)
) WITHOUT ROWID;

-- row_id is declared, so VACUUM keeps it; states point at it.
CREATE TABLE certificates_v11 (
    row_id                  INTEGER PRIMARY KEY,
    account_id              TEXT    NOT NULL,
    region                  TEXT    NOT NULL,
    id                      TEXT    NOT NULL,
    arn                     TEXT    NOT NULL,
    pem                     TEXT    NOT NULL,
    certificate_mode        TEXT    NOT NULL,
    ca_certificate_id       TEXT,
    issuer_certificate_id   TEXT,
    owned_by                TEXT    NOT NULL,
    previous_owned_by       TEXT,
    subject                 TEXT    NOT NULL,
    issuer                  TEXT    NOT NULL,
    subject_der             BLOB    NOT NULL,
    issuer_der              BLOB    NOT NULL,
    serial_number           TEXT    NOT NULL,
    not_before_ms           BIGINT  NOT NULL,
    not_after_ms            BIGINT  NOT NULL,
    key_algorithm           TEXT    NOT NULL,
    key_bits                INTEGER,
    key_curve               TEXT,
    public_key              BLOB    NOT NULL,
    crl_distribution_points TEXT,
    created_at_ms           BIGINT  NOT NULL
);

INSERT INTO certificates_v11 (row_id, account_id, region, id, arn, pem, certificate_mode,
        ca_certificate_id, issuer_certificate_id, owned_by, previous_owned_by, subject,
        issuer, subject_der, issuer_der, serial_number, not_before_ms, not_after_ms,
        key_algorithm, key_bits, key_curve, public_key, crl_distribution_points,
        created_at_ms)
    SELECT rowid, account_id, region, id, arn, pem, certificate_mode, ca_certificate_id,
        issuer_certificate_id, owned_by, previous_owned_by, subject, issuer, subject_der,
        issuer_der, serial_number, not_before_ms, not_after_ms, key_algorithm, key_bits,
        key_curve, public_key, crl_distribution_points, created_at_ms
    FROM certificates;

INSERT INTO certificate_states (account_id, region, id, status, generation_id,
        customer_version, updated_at_ms, row_id)
    SELECT account_id, region, id, status, generation_id, customer_version, updated_at_ms,
        rowid
    FROM certificates
    ORDER BY account_id, region, id;

-- thing_principals' foreign key moves to the table that now holds the id key.
CREATE TABLE thing_principals_v11 (
    account_id     TEXT    NOT NULL,
    region         TEXT    NOT NULL,
    thing_name     TEXT    NOT NULL,
    certificate_id TEXT    NOT NULL,
    exclusive      BOOLEAN NOT NULL,
    attached_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (account_id, region, thing_name, certificate_id),
    FOREIGN KEY (account_id, region, thing_name) REFERENCES things (account_id, region, name),
    FOREIGN KEY (account_id, region, certificate_id)
        REFERENCES certificate_states (account_id, region, id)
);

INSERT INTO thing_principals_v11
    SELECT account_id, region, thing_name, certificate_id, exclusive, attached_at_ms
    FROM thing_principals;

DROP TABLE thing_principals;
DROP TABLE certificates;
ALTER TABLE certificates_v11 RENAME TO certificates;
ALTER TABLE thing_principals_v11 RENAME TO thing_principals;

-- ListCertificates and ListCertificatesByCA in creation order.
CREATE INDEX certificates_by_creation
    ON certificates (account_id, region, created_at_ms, id);
CREATE INDEX certificates_by_ca
    ON certificates (account_id, region, ca_certificate_id, created_at_ms, id);

-- ListPrincipalThings, and the "attached to a thing" check of DeleteCertificate.
CREATE INDEX thing_principals_by_certificate
    ON thing_principals (account_id, region, certificate_id, thing_name);
