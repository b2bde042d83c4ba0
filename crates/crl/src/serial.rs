//! Serial numbers: how they are normalised, and the set of revoked ones.
//!
//! Palisade stores a certificate's serial as the lowercase hex of the DER INTEGER's
//! content octets (`hex(cert.raw_serial())` in the engine), so a serial whose top bit is
//! set carries the 0x00 sign byte (`00ff...`) and a CA that encoded a serial with
//! redundant zeros keeps them. CRL entries may encode the same number differently (a
//! CA fixing its encoder, a non-conforming CA writing unsigned bytes). Both sides are
//! therefore reduced to the magnitude bytes with every leading 0x00 removed: equal
//! positive serials always meet, whatever their encoding.

use std::hash::{BuildHasher, RandomState};

use hashbrown::hash_table::{Entry, HashTable};

/// `bytes` without leading zero bytes (empty for zero).
pub(crate) fn normalise(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// The bytes of a serial written as hex: upper or lower case, optionally with `:`
/// separators (as OpenSSL prints them), odd lengths read as if left-padded with 0.
/// `None` if it is not hex. Not yet normalised.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .trim()
        .bytes()
        .filter(|c| *c != b':')
        .map(|c| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<_>>()?;
    if digits.is_empty() {
        return None;
    }
    let mut bytes = Vec::with_capacity(digits.len() / 2 + 1);
    let mut rest = digits.as_slice();
    if rest.len() % 2 == 1 {
        if let Some((first, tail)) = rest.split_first() {
            bytes.push(*first);
            rest = tail;
        }
    }
    for pair in rest.chunks_exact(2) {
        bytes.push((pair[0] << 4) | pair[1]);
    }
    Some(bytes)
}

/// Where a normalised serial sits in the CRL's DER.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
}

/// The revoked serials of one CRL, as positions in its DER rather than copies: a
/// million-entry CRL costs 8 bytes per entry in the table and no allocation per entry,
/// so a cache can hold many. Every method takes the DER the spans index.
#[derive(Clone, Default)]
pub(crate) struct RevokedSet {
    // SipHash with a per-set random key: the entries are read before the CRL's
    // signature is checked, so they may be chosen to collide under a fixed hash.
    state: RandomState,
    table: HashTable<Span>,
}

impl RevokedSet {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        RevokedSet {
            state: RandomState::new(),
            table: HashTable::with_capacity(capacity),
        }
    }

    /// Adds the serial at `der[start..end]` (an INTEGER's content octets), normalised.
    /// `None` if the range is outside `der` or beyond 4 GiB.
    pub(crate) fn insert(&mut self, der: &[u8], start: usize, end: usize) -> Option<()> {
        let raw = der.get(start..end)?;
        let serial = normalise(raw);
        let span = Span {
            start: u32::try_from(start + (raw.len() - serial.len())).ok()?,
            len: u32::try_from(serial.len()).ok()?,
        };
        let hash = self.state.hash_one(serial);
        let state = &self.state;
        match self.table.entry(
            hash,
            |s| bytes(der, *s) == serial,
            |s| state.hash_one(bytes(der, *s)),
        ) {
            Entry::Occupied(_) => {}
            Entry::Vacant(slot) => {
                slot.insert(span);
            }
        }
        Some(())
    }

    /// Whether `serial` (any encoding; normalised here) is in the set.
    pub(crate) fn contains(&self, der: &[u8], serial: &[u8]) -> bool {
        let serial = normalise(serial);
        let hash = self.state.hash_one(serial);
        self.table
            .find(hash, |s| bytes(der, *s) == serial)
            .is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

fn bytes(der: &[u8], span: Span) -> &[u8] {
    let start = span.start as usize;
    start
        .checked_add(span.len as usize)
        .and_then(|end| der.get(start..end))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zero_bytes_do_not_matter() {
        assert_eq!(normalise(&[0x00, 0x80, 0x01]), &[0x80, 0x01]);
        assert_eq!(normalise(&[0x00, 0x00, 0x80, 0x01]), &[0x80, 0x01]);
        assert_eq!(normalise(&[0x80, 0x01, 0x00]), &[0x80, 0x01, 0x00]);
        assert_eq!(normalise(&[0x00, 0x00]), &[] as &[u8]);
        assert_eq!(normalise(&[]), &[] as &[u8]);
    }

    #[test]
    fn hex_forms() {
        let want = Some(vec![0x0a, 0xbc, 0xde]);
        for text in ["0abcde", "abcde", "ABCDE", "0a:bc:de", " 0abcde\n"] {
            assert_eq!(from_hex(text), want, "{text}");
        }
        assert_eq!(from_hex("000abcde"), Some(vec![0x00, 0x0a, 0xbc, 0xde]));
        assert_eq!(from_hex(""), None);
        assert_eq!(from_hex(":"), None);
        assert_eq!(from_hex("0x12"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é1"), None);
    }

    #[test]
    fn set_matches_any_encoding_and_deduplicates() {
        // Three INTEGER contents: 00 80 01 | 80 01 | 00 00 05
        let der = [0x00, 0x80, 0x01, 0x80, 0x01, 0x00, 0x00, 0x05];
        let mut set = RevokedSet::with_capacity(0);
        set.insert(&der, 0, 3).expect("in range");
        set.insert(&der, 3, 5).expect("in range");
        set.insert(&der, 5, 8).expect("in range");
        assert_eq!(set.len(), 2);
        assert!(set.contains(&der, &[0x80, 0x01]));
        assert!(set.contains(&der, &[0x00, 0x00, 0x80, 0x01]));
        assert!(set.contains(&der, &[0x05]));
        assert!(!set.contains(&der, &[0x80]));
        assert!(!set.contains(&der, &[]));
        assert!(set.insert(&der, 5, 9).is_none());
        assert!(set.insert(&der, 6, 5).is_none());
    }

    #[test]
    fn grows_past_its_initial_capacity() {
        let der: Vec<u8> = (0u16..5000).flat_map(|i| i.to_be_bytes()).collect();
        let mut set = RevokedSet::with_capacity(1);
        for i in 0..5000 {
            set.insert(&der, i * 2, i * 2 + 2).expect("in range");
        }
        // 0x0000 normalises to the empty serial, which is still one entry.
        assert_eq!(set.len(), 5000);
        assert!((0u16..5000).all(|i| set.contains(&der, &i.to_be_bytes())));
        assert!(!set.contains(&der, &5000u16.to_be_bytes()));
    }
}
