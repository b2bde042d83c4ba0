-- The device gateway authenticates a client certificate by its id (SHA-256 of the DER)
-- before it knows the account: every registration of that id, in any account. A device
-- certificate's status lives in certificate_states here.
CREATE INDEX certificate_states_by_id ON certificate_states (id, region, account_id);
