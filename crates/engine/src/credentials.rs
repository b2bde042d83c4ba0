//! Access keys: minting them for the CLI, and finding them fast for every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use palisade_store::{Credential, Store};
use rand::Rng;

use crate::{Engine, EngineError, EngineResult};

/// How long a looked-up credential is trusted without asking the store again. New
/// credentials are found at once (a miss always asks the store); a deleted one stops
/// working within this window, which keeps the per-request cost of auth off the store.
const CACHE_TTL: Duration = Duration::from_secs(2);
const CACHE_MAX: usize = 10_000;

/// An AWS account id: exactly 12 digits.
pub fn validate_account_id(id: &str) -> Result<(), String> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "invalid account id '{id}': an AWS account id is exactly 12 digits"
        ))
    }
}

/// A new random key pair for `account_id`, shaped like AWS's (AKIA + 16, 40-char secret).
pub fn generate(account_id: &str, now_ms: i64) -> Result<Credential, String> {
    validate_account_id(account_id)?;
    const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::thread_rng();
    let mut pick = |set: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| set[rng.gen_range(0..set.len())] as char)
            .collect()
    };
    Ok(Credential {
        access_key_id: format!("AKIA{}", pick(ID_CHARS, 16)),
        secret_access_key: pick(SECRET_CHARS, 40),
        account_id: account_id.to_owned(),
        created_at_ms: now_ms,
    })
}

pub(crate) struct CredentialCache {
    store: Arc<dyn Store>,
    /// Shared, not cloned out: every request looks its key up here, and a clone was
    /// three string allocations per request.
    entries: Mutex<HashMap<String, (Arc<Credential>, Instant)>>,
}

impl CredentialCache {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            entries: Mutex::new(HashMap::new()),
        }
    }

    async fn get(&self, access_key_id: &str) -> EngineResult<Option<Arc<Credential>>> {
        if let Some(c) = self.cached(access_key_id) {
            return Ok(Some(c));
        }
        let Some(found) = self.store.get_credential(access_key_id).await? else {
            return Ok(None);
        };
        let found = Arc::new(found);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_MAX {
            entries.clear();
        }
        entries.insert(
            access_key_id.to_owned(),
            (Arc::clone(&found), Instant::now()),
        );
        Ok(Some(found))
    }

    fn cached(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(access_key_id)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(c, _)| Arc::clone(c))
    }
}

impl Engine {
    /// The credential for an access key id, if it exists.
    pub async fn credential(&self, access_key_id: &str) -> EngineResult<Option<Arc<Credential>>> {
        self.inner.credentials.get(access_key_id).await
    }

    /// Creates and stores a new credential (used on first start).
    pub async fn create_credential(&self, account_id: &str) -> EngineResult<Credential> {
        let cred = generate(account_id, self.now_ms()).map_err(EngineError::InvalidRequest)?;
        self.store().create_credential(&cred).await?;
        Ok(cred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids() {
        assert!(validate_account_id("123456789012").is_ok());
        assert!(validate_account_id("12345678901").is_err());
        assert!(validate_account_id("12345678901a").is_err());
        assert!(validate_account_id("").is_err());
    }

    #[test]
    fn generated_shape() {
        let c = generate("123456789012", 0).unwrap();
        assert!(c.access_key_id.starts_with("AKIA") && c.access_key_id.len() == 20);
        assert_eq!(c.secret_access_key.len(), 40);
        assert!(generate("x", 0).is_err());
    }
}
