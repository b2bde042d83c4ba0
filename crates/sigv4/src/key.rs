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

/// HMAC-SHA256 already keyed with a signing key: cloning it skips hashing the key
/// blocks again for every request.
pub(crate) type SigningMac = Hmac<Sha256>;

/// A derived key for one day. Region and service are not part of it: a `Verifier`
/// has one of each and `parse` rejects any other scope before we get here.
struct Entry {
    date: String,
    /// A digest, not the secret: a rotated secret misses instead of hitting the
    /// old key, without keeping another copy of the secret in memory.
    secret_digest: [u8; 32],
    mac: SigningMac,
}

/// Days kept per access key: two, so that requests signed on either side of
/// midnight (within the clock skew) do not evict each other's key.
const DAYS_PER_KEY: usize = 2;

/// Derived signing keys, saving four HMACs per request. Keyed by access key id
/// alone, so a lookup borrows the id instead of building an owned key.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: Mutex<HashMap<String, Vec<Entry>>>,
}

impl std::fmt::Debug for KeyCache {
    /// Never the keys themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("access_keys", &self.lock().len())
            .finish()
    }
}

impl KeyCache {
    pub(crate) fn signing_mac(
        &self,
        access_key_id: &str,
        secret: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> SigningMac {
        let secret_digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let hit = |e: &&Entry| e.date == date && e.secret_digest == secret_digest;
        if let Some(entries) = self.lock().get(access_key_id) {
            if let Some(e) = entries.iter().find(hit) {
                return e.mac.clone();
            }
        }
        // Derived outside the lock so a miss does not stall other requests.
        let key = derive_signing_key(secret, date, region, service);
        let mac = SigningMac::new_from_slice(&key).expect("HMAC-SHA256 accepts keys of any length");
        let mut keys = self.lock();
        if keys.len() >= MAX_CACHED_KEYS && !keys.contains_key(access_key_id) {
            keys.clear();
        }
        let entries = keys.entry(access_key_id.to_owned()).or_default();
        // A rotated secret replaces the entries made with the old one.
        entries.retain(|e| e.secret_digest == secret_digest && e.date != date);
        if entries.len() >= DAYS_PER_KEY {
            entries.remove(0);
        }
        entries.push(Entry {
            date: date.to_owned(),
            secret_digest,
            mac: mac.clone(),
        });
        mac
    }

    /// A poisoned lock only means another thread panicked mid-insert; the map
    /// is still a valid cache, so keep using it rather than failing auth.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Entry>>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    #[cfg(test)]
    fn signing_key(
        &self,
        access_key_id: &str,
        secret: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> [u8; 32] {
        probe(self.signing_mac(access_key_id, secret, date, region, service))
    }
}

/// The key itself is not kept, only a MAC keyed with it; a MAC of a fixed
/// message tells keys apart.
#[cfg(test)]
fn probe(mut mac: SigningMac) -> [u8; 32] {
    mac.update(b"probe");
    mac.finalize().into_bytes().into()
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
        let derived = derive_signing_key("other", "20150830", "us-east-1", "iot");
        assert_eq!(
            rotated,
            probe(SigningMac::new_from_slice(&derived).unwrap())
        );
        // The old secret's key was dropped with the rotation.
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn two_days_per_key_do_not_evict_each_other() {
        let cache = KeyCache::default();
        let day1 = cache.signing_key("AKID", SECRET, "20150830", "us-east-1", "iot");
        let day2 = cache.signing_key("AKID", SECRET, "20150831", "us-east-1", "iot");
        assert_ne!(day1, day2);
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.signing_key("AKID", SECRET, "20150830", "us-east-1", "iot"),
            day1
        );
        assert_eq!(cache.len(), 2);
        cache.signing_key("AKID", SECRET, "20150901", "us-east-1", "iot");
        assert_eq!(cache.len(), 2);
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
