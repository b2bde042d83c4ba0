-- The device gateway authenticates a client certificate by its id (SHA-256 of the DER)
-- before it knows the account: every registration of that id, in any account.
CREATE INDEX certificates_by_id ON certificates (id, region, account_id);
