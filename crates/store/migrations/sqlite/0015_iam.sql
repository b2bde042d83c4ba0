-- IAM and Amazon Cognito data the role alias and Cognito checks judge (issue 16),
-- imported from the AWS CLI's output or read from IAM; the same in both dialects.
-- One row per piece a re-import replaces: kind 'role' (a RoleDetail of
-- get-account-authorization-details, keyed by role ARN), 'managed_policy' (a Policy of
-- the same output with its versions, keyed by policy ARN), 'last_accessed'
-- (get-service-last-accessed-details for one role, keyed by role ARN) and
-- 'identity_pool' (get-identity-pool-roles, keyed by identity pool id). The body is the
-- piece's JSON as the CLI printed it; the engine reads it.
CREATE TABLE iam_documents (
    account_id     TEXT   NOT NULL,
    region         TEXT   NOT NULL,
    kind           TEXT   NOT NULL,
    key            TEXT   NOT NULL,
    body           TEXT   NOT NULL,
    source         TEXT   NOT NULL,
    stored_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, kind, key)
);
