//! Debian's predictable OpenSSL keys (CVE-2008-0166): a blocklist of truncated
//! modulus fingerprints, in the format described in `data/README.md`.

use std::fmt;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"PKQDWK01";
/// Fingerprint = SHA-256 of the modulus as minimal big-endian bytes (badkeys'
/// convention, which the source data uses).
const HASH_KIND_SHA256_MODULUS: u8 = 1;
const PREFIX_BYTES: usize = 2;
const STORED_BYTES: usize = 4;
const BUCKETS: usize = 1 << (8 * PREFIX_BYTES);
const HEADER_BYTES: usize = 12;
const MAX_COVERED_SIZES: usize = 8;

/// Bytes of the SHA-256 digest that the blocklist keeps: 48 bits, so with ~1.35M
/// entries an unrelated key matches by chance with probability ~5e-9.
pub const FINGERPRINT_LEN: usize = PREFIX_BYTES + STORED_BYTES;

static EMBEDDED: &[u8] = include_bytes!("../data/debian-weak-rsa.bin");

/// Why a blocklist file was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlocklistError {
    /// Not a blocklist file.
    BadMagic,
    /// A hash kind or layout this build does not know.
    UnsupportedFormat,
    /// The file is shorter or longer than its header says.
    SizeMismatch,
    /// Bucket offsets do not run from 0 to the entry count without decreasing.
    BadOffsets,
    /// Entries within a bucket are not strictly ascending, so lookups would miss.
    Unsorted,
}

impl fmt::Display for BlocklistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadMagic => "not a key-quality blocklist file",
            Self::UnsupportedFormat => "unsupported blocklist format",
            Self::SizeMismatch => "blocklist length does not match its header",
            Self::BadOffsets => "blocklist bucket offsets are inconsistent",
            Self::Unsorted => "blocklist entries are not sorted",
        })
    }
}

impl std::error::Error for BlocklistError {}

/// A validated, borrowed blocklist of Debian weak-key fingerprints.
#[derive(Debug, Clone)]
pub struct DebianBlocklist<'a> {
    offsets: &'a [u8],
    entries: &'a [u8],
    covered: [u16; MAX_COVERED_SIZES],
    covered_len: usize,
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl<'a> DebianBlocklist<'a> {
    /// A blocklist that matches nothing.
    pub const fn empty() -> Self {
        Self {
            offsets: &[],
            entries: &[],
            covered: [0; MAX_COVERED_SIZES],
            covered_len: 0,
        }
    }

    /// Validates `bytes` once so that lookups can trust the layout.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BlocklistError> {
        if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
            return Err(BlocklistError::BadMagic);
        }
        let (kind, prefix, stored, covered_len) = (bytes[8], bytes[9], bytes[10], bytes[11]);
        let covered_len = usize::from(covered_len);
        if kind != HASH_KIND_SHA256_MODULUS
            || usize::from(prefix) != PREFIX_BYTES
            || usize::from(stored) != STORED_BYTES
            || covered_len > MAX_COVERED_SIZES
        {
            return Err(BlocklistError::UnsupportedFormat);
        }
        let mut pos = HEADER_BYTES;
        let mut covered = [0u16; MAX_COVERED_SIZES];
        for size in covered.iter_mut().take(covered_len) {
            let b = bytes
                .get(pos..pos + 2)
                .ok_or(BlocklistError::SizeMismatch)?;
            *size = u16::from_le_bytes([b[0], b[1]]);
            pos += 2;
        }
        let count = read_u32(bytes, pos).ok_or(BlocklistError::SizeMismatch)? as usize;
        pos += 4;
        let offsets_len = (BUCKETS + 1) * 4;
        let entries_len = count
            .checked_mul(STORED_BYTES)
            .ok_or(BlocklistError::SizeMismatch)?;
        if bytes.len() != pos + offsets_len + entries_len {
            return Err(BlocklistError::SizeMismatch);
        }
        let offsets = &bytes[pos..pos + offsets_len];
        let entries = &bytes[pos + offsets_len..];

        let mut prev = 0usize;
        for b in 0..=BUCKETS {
            let off = read_u32(offsets, b * 4).ok_or(BlocklistError::BadOffsets)? as usize;
            if (b == 0 && off != 0) || off < prev || off > count {
                return Err(BlocklistError::BadOffsets);
            }
            if b > 0 {
                let bucket = &entries[prev * STORED_BYTES..off * STORED_BYTES];
                let mut entries = bucket.chunks_exact(STORED_BYTES);
                if let Some(mut last) = entries.next() {
                    for e in entries {
                        if e <= last {
                            return Err(BlocklistError::Unsorted);
                        }
                        last = e;
                    }
                }
            }
            prev = off;
        }
        if prev != count {
            return Err(BlocklistError::BadOffsets);
        }
        Ok(Self {
            offsets,
            entries,
            covered,
            covered_len,
        })
    }

    /// Number of fingerprints.
    pub fn len(&self) -> usize {
        self.entries.len() / STORED_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// RSA key sizes (bits) whose Debian weak keys the data is known to cover.
    /// Keys of other sizes are still looked up, but a miss says little about them.
    pub fn covered_key_sizes(&self) -> &[u16] {
        &self.covered[..self.covered_len]
    }

    fn offset(&self, bucket: usize) -> usize {
        read_u32(self.offsets, bucket * 4).unwrap_or(0) as usize
    }

    /// Looks up a truncated fingerprint (see [`fingerprint`]).
    pub fn contains_fingerprint(&self, fp: &[u8; FINGERPRINT_LEN]) -> bool {
        let bucket = usize::from(u16::from_be_bytes([fp[0], fp[1]]));
        let (lo, hi) = (self.offset(bucket), self.offset(bucket + 1));
        let Some(entries) = self.entries.get(lo * STORED_BYTES..hi * STORED_BYTES) else {
            return false;
        };
        let key = &fp[PREFIX_BYTES..];
        // Buckets hold ~20 entries; a binary search over fixed-width records.
        let (mut lo, mut hi) = (0, entries.len() / STORED_BYTES);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let e = &entries[mid * STORED_BYTES..(mid + 1) * STORED_BYTES];
            match e.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// `modulus`: big-endian, leading zero bytes allowed.
    pub fn contains_modulus(&self, modulus: &[u8]) -> bool {
        self.contains_fingerprint(&fingerprint(modulus))
    }
}

/// The blocklist's fingerprint of a modulus (big-endian, leading zeros allowed):
/// the first [`FINGERPRINT_LEN`] bytes of SHA-256 over its minimal encoding.
pub fn fingerprint(modulus: &[u8]) -> [u8; FINGERPRINT_LEN] {
    let digest = Sha256::digest(crate::trim_leading_zeros(modulus));
    let mut fp = [0u8; FINGERPRINT_LEN];
    fp.copy_from_slice(&digest[..FINGERPRINT_LEN]);
    fp
}

/// The blocklist compiled into this crate (`data/debian-weak-rsa.bin`).
pub fn embedded() -> &'static DebianBlocklist<'static> {
    static LIST: OnceLock<DebianBlocklist<'static>> = OnceLock::new();
    // The file is validated by this crate's tests; should a corrupted build ever
    // ship, checking nothing (and reporting no covered sizes) beats a panic in
    // the middle of an audit.
    LIST.get_or_init(|| DebianBlocklist::parse(EMBEDDED).unwrap_or(DebianBlocklist::empty()))
}

#[cfg(test)]
pub(crate) fn embedded_bytes() -> &'static [u8] {
    EMBEDDED
}
