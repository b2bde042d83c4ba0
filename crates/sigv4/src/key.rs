//! Signing-key derivation and its cache.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The cache is cleared wholesale past this size: simpler than LRU, and a
/// key only lives a day anyway (it is per date).
pub(crate) const MAX_CACHED_KEYS: usize = 10_000;

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
pub(crate) fn derive_signing_key(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Region and service are not part of the key: a `Verifier` has one of each
/// and `parse` rejects any other scope before we get here.
#[derive(Debug, Hash, PartialEq, Eq)]
struct CacheKey {
    access_key_id: String,
    date: String,
    /// A digest, not the secret: a rotated secret misses instead of hitting the
    /// old key, without keeping another copy of the secret in memory.
    secret_digest: [u8; 32],
}

/// Derived signing keys, saving four HMACs per request.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    keys: Mutex<HashMap<CacheKey, [u8; 32]>>,
}

impl KeyCache {
    pub(crate) fn signing_key(
        &self,
        access_key_id: &str,
        secret: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> [u8; 32] {
        let cache_key = CacheKey {
            access_key_id: access_key_id.to_owned(),
            date: date.to_owned(),
            secret_digest: Sha256::digest(secret.as_bytes()).into(),
        };
        if let Some(key) = self.lock().get(&cache_key) {
            return *key;
        }
        // Derived outside the lock so a miss does not stall other requests.
        let key = derive_signing_key(secret, date, region, service);
        let mut keys = self.lock();
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(cache_key, key);
        key
    }

    /// A poisoned lock only means another thread panicked mid-insert; the map
    /// is still a valid cache, so keep using it rather than failing auth.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, [u8; 32]>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn derivation_matches_aws_documentation_example() {
        // From the AWS docs' "deriving the signing key" example.
        let key = derive_signing_key(SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(
            hex::encode(key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn cache_hits_and_respects_secret_rotation() {
        let cache = KeyCache::default();
        let a = cache.signing_key("AKID", SECRET, "20150830", "us-east-1", "iot");
        let b = cache.signing_key("AKID", SECRET, "20150830", "us-east-1", "iot");
        assert_eq!(a, b);
        assert_eq!(cache.len(), 1);
        let rotated = cache.signing_key("AKID", "other", "20150830", "us-east-1", "iot");
        assert_ne!(a, rotated);
        assert_eq!(
            rotated,
            derive_signing_key("other", "20150830", "us-east-1", "iot")
        );
    }

    #[test]
    fn cache_is_bounded() {
        let cache = KeyCache::default();
        for i in 0..=MAX_CACHED_KEYS {
            cache.signing_key(&format!("AKID{i}"), SECRET, "20150830", "us-east-1", "iot");
        }
        assert!(cache.len() <= MAX_CACHED_KEYS);
        assert!(cache.len() >= 1);
    }
}
