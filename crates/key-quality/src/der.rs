//! Just enough DER to find an RSA modulus in a SubjectPublicKeyInfo.

/// rsaEncryption, 1.2.840.113549.1.1.1.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-RSASSA-PSS, 1.2.840.113549.1.1.10: same RSAPublicKey, same weaknesses.
const OID_RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// The contents of the next element, which must carry `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&t, rest) = self.rest.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            // 0x80 is BER's indefinite length; more than 4 length bytes would
            // describe an element far larger than any key.
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (len_bytes, rest) = rest.split_at(n);
            let len = len_bytes
                .iter()
                .fold(0usize, |a, &b| (a << 8) | usize::from(b));
            (len, rest)
        };
        if rest.len() < len {
            return None;
        }
        let (contents, rest) = rest.split_at(len);
        self.rest = rest;
        Some(contents)
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// What a SubjectPublicKeyInfo holds, as far as these checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpkiKey<'a> {
    /// Big-endian modulus without leading zero bytes.
    Rsa(&'a [u8]),
    /// A well-formed SPKI for any other algorithm (EC, Ed25519, DSA, ...).
    Other,
}

/// None when the input is not a well-formed SPKI (or an RSA key inside it is not
/// a well-formed RSAPublicKey).
pub(crate) fn parse_spki(spki: &[u8]) -> Option<SpkiKey<'_>> {
    let mut outer = Reader::new(spki);
    let body = outer.expect(TAG_SEQUENCE)?;
    if !outer.is_empty() {
        return None;
    }
    let mut body = Reader::new(body);
    let algorithm = body.expect(TAG_SEQUENCE)?;
    let key_bits = body.expect(TAG_BIT_STRING)?;
    if !body.is_empty() {
        return None;
    }
    // Parameters (NULL for RSA, a curve OID for EC, absent for Ed25519) follow the
    // OID; they do not change where the modulus is, so they are not inspected.
    let oid = Reader::new(algorithm).expect(TAG_OID)?;
    if oid != OID_RSA_ENCRYPTION && oid != OID_RSASSA_PSS {
        return Some(SpkiKey::Other);
    }
    let (&unused_bits, key) = key_bits.split_first()?;
    if unused_bits != 0 {
        return None;
    }
    let mut key = Reader::new(key);
    let rsa = key.expect(TAG_SEQUENCE)?;
    if !key.is_empty() {
        return None;
    }
    let mut rsa = Reader::new(rsa);
    let modulus = rsa.expect(TAG_INTEGER)?;
    rsa.expect(TAG_INTEGER)?; // publicExponent: present, otherwise irrelevant
    if !rsa.is_empty() {
        return None;
    }
    // A set top bit without a leading 0x00 would make the INTEGER negative.
    if modulus.first()? & 0x80 != 0 {
        return None;
    }
    let modulus = crate::trim_leading_zeros(modulus);
    if modulus.is_empty() {
        return None;
    }
    Some(SpkiKey::Rsa(modulus))
}
