//! Opaque, tamper-evident pagination tokens.
//!
//! A token carries the last key of the page it ends (keyset pagination, so pages stay
//! stable while records are added). It is MAC'd with the store's server secret over the
//! caller's scope, the listing it belongs to and its filter, so a token edited by hand,
//! replayed in another account, or used with another filter is rejected.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use std::future::Future;

use palisade_store::StoreResult;

use crate::{Engine, EngineError, EngineResult, Scope};

type HmacSha256 = Hmac<Sha256>;

const MAC_LEN: usize = 16;

pub struct TokenSigner {
    key: Vec<u8>,
}

impl TokenSigner {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: secret.to_vec(),
        }
    }

    fn mac(&self, scope: &Scope, listing: &str, filter: &str, last_key: &str) -> [u8; MAC_LEN] {
        // Key length is unrestricted for HMAC; new_from_slice cannot fail.
        let mut m = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        for part in [
            scope.account_id.as_str(),
            scope.region.as_str(),
            listing,
            filter,
            last_key,
        ] {
            m.update(&(part.len() as u64).to_be_bytes());
            m.update(part.as_bytes());
        }
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    pub fn issue(&self, scope: &Scope, listing: &str, filter: &str, last_key: &str) -> String {
        let mut raw = last_key.as_bytes().to_vec();
        raw.extend_from_slice(&self.mac(scope, listing, filter, last_key));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Returns the last key the token carries.
    pub fn open(
        &self,
        scope: &Scope,
        listing: &str,
        filter: &str,
        token: &str,
    ) -> Result<String, EngineError> {
        let invalid =
            || EngineError::InvalidRequest("The pagination token (nextToken) is invalid.".into());
        let raw = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| invalid())?;
        if raw.len() < MAC_LEN {
            return Err(invalid());
        }
        let (key, mac) = raw.split_at(raw.len() - MAC_LEN);
        let key = std::str::from_utf8(key).map_err(|_| invalid())?;
        let expected = self.mac(scope, listing, filter, key);
        // Constant-time enough for a pagination token: compare every byte.
        let diff = expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(invalid());
        }
        Ok(key.to_owned())
    }
}

/// The page size for a request: the model bounds it, AWS defaults it.
pub fn page_size(max_results: Option<i32>, default: usize) -> usize {
    max_results.map_or(default, |n| n.clamp(1, 250) as usize)
}

/// One page of a listing: the store is asked for one item more than the page holds, so
/// whether another page follows is known without a second read.
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    more: bool,
}

impl<T> Page<T> {
    /// Reads up to `size` items with `fetch`, which is given how many to read.
    pub(crate) async fn fetch<F>(
        size: usize,
        fetch: impl FnOnce(usize) -> F,
    ) -> EngineResult<Page<T>>
    where
        F: Future<Output = StoreResult<Vec<T>>>,
    {
        Ok(Page::cut(fetch(size + 1).await?, size))
    }

    /// The page of `size` items out of `items`, read with one more than `size` asked for.
    pub(crate) fn cut(mut items: Vec<T>, size: usize) -> Page<T> {
        let more = items.len() > size;
        items.truncate(size);
        Page { items, more }
    }

    /// The token of the next page, made from the last item, if another page follows.
    pub(crate) fn next<K>(&self, token: impl FnOnce(&T) -> K) -> Option<K> {
        self.items.last().filter(|_| self.more).map(token)
    }
}

impl Engine {
    /// The position a `marker` (ListPolicies, ListRoleAliases, the certificate
    /// listings) carries. The token is bound to the listing and its direction, so a
    /// marker from an ascending listing is refused by a descending one.
    pub(crate) fn open_marker(
        &self,
        scope: &Scope,
        listing: &str,
        descending: bool,
        marker: Option<&str>,
    ) -> EngineResult<Option<String>> {
        let Some(marker) = marker.filter(|m| !m.is_empty()) else {
            return Ok(None);
        };
        // Markers are standard base64 in the model; the signer speaks the URL-safe
        // alphabet (see `issue_marker`).
        let token: String = marker
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        self.inner
            .tokens
            .open(scope, listing, direction(descending), &token)
            .map(Some)
            .map_err(|_| EngineError::InvalidRequest("The marker is invalid.".into()))
    }

    /// A marker for the page that ends at `last`. The model constrains markers to
    /// `[A-Za-z0-9+/]+={0,2}`, so the token's URL-safe alphabet is mapped onto the
    /// standard one (and back in `open_marker`).
    pub(crate) fn issue_marker(
        &self,
        scope: &Scope,
        listing: &str,
        descending: bool,
        last: &str,
    ) -> String {
        self.inner
            .tokens
            .issue(scope, listing, direction(descending), last)
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect()
    }
}

fn direction(descending: bool) -> &'static str {
    if descending {
        "descending"
    } else {
        "ascending"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(a: &str) -> Scope {
        Scope {
            account_id: a.into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let s = TokenSigner::new(b"secret");
        let t = s.issue(&scope("111111111111"), "actions", "", "name-9");
        assert_eq!(
            s.open(&scope("111111111111"), "actions", "", &t).unwrap(),
            "name-9"
        );
        assert!(s.open(&scope("222222222222"), "actions", "", &t).is_err());
        assert!(s.open(&scope("111111111111"), "actions", "X", &t).is_err());
        assert!(s.open(&scope("111111111111"), "tags", "", &t).is_err());
        let mut bad = t.clone();
        bad.replace_range(0..1, if t.starts_with('A') { "B" } else { "A" });
        assert!(s.open(&scope("111111111111"), "actions", "", &bad).is_err());
        assert!(s.open(&scope("111111111111"), "actions", "", "!!").is_err());
        assert!(s.open(&scope("111111111111"), "actions", "", "").is_err());
    }

    #[test]
    fn a_page_knows_whether_another_follows() {
        let full = Page::cut(vec![1, 2, 3], 2);
        assert_eq!(full.items, vec![1, 2]);
        assert_eq!(full.next(|last| *last), Some(2));
        let last = Page::cut(vec![1, 2], 2);
        assert_eq!(last.items, vec![1, 2]);
        assert_eq!(last.next(|last| *last), None);
        assert_eq!(Page::<i32>::cut(Vec::new(), 2).next(|last| *last), None);
    }
}
