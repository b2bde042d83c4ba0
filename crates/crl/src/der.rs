//! A minimal DER reader for the parts of a CRL this crate walks itself.
//!
//! x509-parser decodes every revoked-certificate entry into a `BigUint` and a vector of
//! parsed extensions; for a CRL with a million entries that took about six seconds in a
//! debug build. Walking the entries here, touching only the bytes lookup needs, keeps a
//! large CRL well under a second. Positions are offsets into the whole buffer so the
//! caller can keep ranges (the TBS, the signature) without borrowing.

pub(crate) const BOOLEAN: u8 = 0x01;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const ENUMERATED: u8 = 0x0a;
pub(crate) const UTC_TIME: u8 = 0x17;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;
pub(crate) const SEQUENCE: u8 = 0x30;
/// `[0] EXPLICIT`, constructed: where a CRL keeps its extensions.
pub(crate) const CONTEXT_0: u8 = 0xa0;
/// `[4]`, constructed: a GeneralName's directoryName.
pub(crate) const CONTEXT_4: u8 = 0xa4;

/// One tag-length-value, as offsets into the buffer it was read from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv {
    pub(crate) tag: u8,
    pub(crate) start: usize,
    pub(crate) content: usize,
    pub(crate) end: usize,
}

impl Tlv {
    pub(crate) fn whole(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }

    pub(crate) fn contents(&self) -> std::ops::Range<usize> {
        self.content..self.end
    }
}

/// Reads consecutive TLVs from `buf[pos..end]`. Every read is bounds-checked, so
/// hostile input yields `None`, never a panic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    /// A reader over the contents of `tlv`, which must come from the same buffer.
    pub(crate) fn inside(&self, tlv: &Tlv) -> Reader<'a> {
        Reader {
            buf: self.buf,
            pos: tlv.content,
            end: tlv.end,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        if self.is_empty() {
            None
        } else {
            self.buf.get(self.pos).copied()
        }
    }

    /// The whole buffer the reader walks, which [`Tlv`] offsets index.
    pub(crate) fn buf(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn bytes(&self, range: std::ops::Range<usize>) -> &'a [u8] {
        self.buf.get(range).unwrap_or_default()
    }

    /// The next TLV, or `None` when the input ends or is not DER-shaped. Indefinite
    /// lengths (BER) and multi-byte tags are refused: neither occurs in a well-formed CRL
    /// structure at the levels walked here.
    pub(crate) fn read(&mut self) -> Option<Tlv> {
        if self.is_empty() {
            return None;
        }
        let start = self.pos;
        let tag = *self.buf.get(start)?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let first = *self.buf.get(start + 1)?;
        let mut content = start + 2;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            // 0x80 is the indefinite form; more than four length bytes would describe
            // more than 4 GiB, which no CRL Palisade accepts.
            if count == 0 || count > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..count {
                len = (len << 8) | usize::from(*self.buf.get(content + i)?);
            }
            content += count;
            len
        };
        let end = content.checked_add(len)?;
        if end > self.end {
            return None;
        }
        self.pos = end;
        Some(Tlv {
            tag,
            start,
            content,
            end,
        })
    }

    /// The next TLV if it has `tag`.
    pub(crate) fn read_tag(&mut self, tag: u8) -> Option<Tlv> {
        if self.peek_tag()? != tag {
            return None;
        }
        self.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let mut data = vec![0x30, 0x82, 0x01, 0x00];
        data.extend(std::iter::repeat_n(0u8, 256));
        data.extend([0x02, 0x01, 0x05]);
        let mut r = Reader::new(&data);
        let seq = r.read().expect("sequence");
        assert_eq!((seq.tag, seq.content, seq.end), (SEQUENCE, 4, 260));
        let int = r.read_tag(INTEGER).expect("integer");
        assert_eq!(r.bytes(int.contents()), &[5]);
        assert!(r.is_empty());
        assert!(r.read().is_none());
    }

    #[test]
    fn refuses_overlong_indefinite_and_high_tags() {
        assert!(Reader::new(&[0x30, 0x05, 0x00]).read().is_none());
        assert!(Reader::new(&[0x30, 0x80, 0x00, 0x00]).read().is_none());
        assert!(Reader::new(&[0x1f, 0x01, 0x00]).read().is_none());
        assert!(Reader::new(&[0x30, 0x85, 1, 0, 0, 0, 0]).read().is_none());
        assert!(Reader::new(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff])
            .read()
            .is_none());
        assert!(Reader::new(&[0x30]).read().is_none());
    }

    #[test]
    fn inner_reader_stops_at_parent_end() {
        // A child claiming more bytes than its parent holds must not read past it.
        let data = [0x30, 0x03, 0x04, 0x03, 0x00, 0x00, 0x00];
        let mut r = Reader::new(&data);
        let seq = r.read().expect("sequence");
        assert!(r.inside(&seq).read().is_none());
    }
}
