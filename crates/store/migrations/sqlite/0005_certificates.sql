-- Certificates, CA certificates, registration codes, the account's issuing CA, thing
-- principals and policy attachments; mirrored column for column by
-- migrations/postgres/0005_certificates.sql (BLOB there is BYTEA).
--
-- What audits read from a certificate (validity, names, serial, key, CRL distribution
-- points) is extracted once at registration and kept in columns; the PEM is kept too.

-- One code per account and region, made on first GetRegistrationCode.
CREATE TABLE registration_codes (
    account_id    TEXT   NOT NULL,
    region        TEXT   NOT NULL,
    code          TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, region)
);

-- The "Palisade CA" that issues CreateKeysAndCertificate / CreateCertificateFromCsr
-- certificates, one per account and region, made on first use. Its private key
-- (PKCS#8 PEM) is stored so later certificates can be issued; device keys never are.
CREATE TABLE issuing_cas (
    account_id      TEXT   NOT NULL,
    region          TEXT   NOT NULL,
    id              TEXT   NOT NULL,
    certificate_pem TEXT   NOT NULL,
    private_key_pem TEXT   NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (account_id, region)
);

CREATE TABLE ca_certificates (
    account_id               TEXT    NOT NULL,
    region                   TEXT    NOT NULL,
    id                       TEXT    NOT NULL,
    arn                      TEXT    NOT NULL,
    pem                      TEXT    NOT NULL,
    status                   TEXT    NOT NULL,
    certificate_mode         TEXT    NOT NULL,
    auto_registration_status TEXT    NOT NULL,
    role_arn                 TEXT,
    template_body            TEXT,
    template_name            TEXT,
    owned_by                 TEXT    NOT NULL,
    generation_id            TEXT    NOT NULL,
    customer_version         BIGINT  NOT NULL,
    subject                  TEXT    NOT NULL,
    issuer                   TEXT    NOT NULL,
    subject_der              BLOB    NOT NULL,
    issuer_der               BLOB    NOT NULL,
    serial_number            TEXT    NOT NULL,
    not_before_ms            BIGINT  NOT NULL,
    not_after_ms             BIGINT  NOT NULL,
    key_algorithm            TEXT    NOT NULL,
    key_bits                 INTEGER,
    key_curve                TEXT,
    public_key               BLOB    NOT NULL,
    crl_distribution_points  TEXT,
    created_at_ms            BIGINT  NOT NULL,
    updated_at_ms            BIGINT  NOT NULL,
    PRIMARY KEY (account_id, region, id)
);

-- ListCACertificates in creation order.
CREATE INDEX ca_certificates_by_creation
    ON ca_certificates (account_id, region, created_at_ms, id);
-- Finding a device certificate's CA by its issuer name.
CREATE INDEX ca_certificates_by_subject
    ON ca_certificates (account_id, region, subject_der);

-- ca_certificate_id has no foreign key: a CA may be deleted while device certificates
-- registered under it remain (they keep the id, as a record of where they came from).
CREATE TABLE certificates (
    account_id              TEXT    NOT NULL,
    region                  TEXT    NOT NULL,
    id                      TEXT    NOT NULL,
    arn                     TEXT    NOT NULL,
    pem                     TEXT    NOT NULL,
    status                  TEXT    NOT NULL,
    certificate_mode        TEXT    NOT NULL,
    ca_certificate_id       TEXT,
    issuer_certificate_id   TEXT,
    owned_by                TEXT    NOT NULL,
    previous_owned_by       TEXT,
    generation_id           TEXT    NOT NULL,
    customer_version        BIGINT  NOT NULL,
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
    created_at_ms           BIGINT  NOT NULL,
    updated_at_ms           BIGINT  NOT NULL,
    PRIMARY KEY (account_id, region, id)
);

-- ListCertificates and ListCertificatesByCA in creation order.
CREATE INDEX certificates_by_creation
    ON certificates (account_id, region, created_at_ms, id);
CREATE INDEX certificates_by_ca
    ON certificates (account_id, region, ca_certificate_id, created_at_ms, id);

-- A thing's principals (certificates, by id). The foreign keys make an attachment and
-- the deletion of its thing or certificate exclude each other.
CREATE TABLE thing_principals (
    account_id     TEXT    NOT NULL,
    region         TEXT    NOT NULL,
    thing_name     TEXT    NOT NULL,
    certificate_id TEXT    NOT NULL,
    exclusive      BOOLEAN NOT NULL,
    attached_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (account_id, region, thing_name, certificate_id),
    FOREIGN KEY (account_id, region, thing_name) REFERENCES things (account_id, region, name),
    FOREIGN KEY (account_id, region, certificate_id) REFERENCES certificates (account_id, region, id)
);

-- ListPrincipalThings, and the "attached to a thing" check of DeleteCertificate.
CREATE INDEX thing_principals_by_certificate
    ON thing_principals (account_id, region, certificate_id, thing_name);

-- policy_attachments (0004) already fits: target holds the certificate or thing group
-- ARN. Listing a policy's targets walks its primary key; a target's policies use
-- policy_attachments_by_target.
