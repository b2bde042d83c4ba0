/// The account and region every customer record belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub account_id: String,
    pub region: String,
}

impl Scope {
    /// `account/region`, the key of the scope's advisory locks on PostgreSQL.
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.account_id, self.region)
    }
}

/// An access key pair and the account it acts for. Credentials are global (not
/// per region): one key works in every region the server answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}
