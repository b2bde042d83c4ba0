//! Test vectors are genuine keys; `testdata/README.md` says where each came from.

use super::*;
use base64::Engine;

macro_rules! testdata {
    ($path:literal) => {
        include_str!(concat!("../testdata/", $path))
    };
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("test PEM decodes")
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    let hex = hex.trim().trim_start_matches("0x");
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_string()
    };
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// xorshift64*: deterministic, dependency-free test randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// `a * m` for big-endian `a`.
fn mul_small(a: &[u8], m: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len() + 4);
    let mut carry = 0u64;
    for &b in a.iter().rev() {
        let v = u64::from(b) * u64::from(m) + carry;
        out.push(v as u8);
        carry = v >> 8;
    }
    while carry > 0 {
        out.push(carry as u8);
        carry >>= 8;
    }
    out.reverse();
    out
}

fn pow_65537(e: u32) -> Vec<u8> {
    (0..e).fold(vec![1u8], |acc, _| mul_small(&acc, 65537))
}

const ROCA_POSITIVE_MODULI: [(&str, &str); 5] = [
    ("mod01", testdata!("roca/mod01.hex")),
    ("mod02", testdata!("roca/mod02.hex")),
    ("mod03", testdata!("roca/mod03.hex")),
    ("mod08", testdata!("roca/mod08.hex")),
    ("mod09", testdata!("roca/mod09.hex")),
];

const ROCA_NEGATIVE_MODULI: [(&str, &str); 4] = [
    ("mod04", testdata!("roca/mod04.hex")),
    ("mod05", testdata!("roca/mod05.hex")),
    ("mod06", testdata!("roca/mod06.hex")),
    ("mod07", testdata!("roca/mod07.hex")),
];

const ROCA_SPKIS: [(&str, &str); 5] = [
    ("cert04", testdata!("roca/cert04.spki.pem")),
    ("cert05", testdata!("roca/cert05.spki.pem")),
    ("csr05", testdata!("roca/csr05.spki.pem")),
    ("pubkey03", testdata!("roca/pubkey03.spki.pem")),
    (
        "badkeys rsa-roca",
        testdata!("roca/badkeys-rsa-roca.spki.pem"),
    ),
];

const DEBIAN_SPKIS: [(&str, &str); 4] = [
    (
        "badkeys rsa-debianweak (2048)",
        testdata!("debian/badkeys-rsa-debianweak.spki.pem"),
    ),
    (
        "rsa2048 be32 pid 1000 rnd",
        testdata!("debian/dk2048-be32-1000-rnd.spki.pem"),
    ),
    (
        "rsa3072 be32 pid 1000 nornd-old",
        testdata!("debian/dk3072-be32-1000-nornd-old.spki.pem"),
    ),
    (
        "rsa4096 be32 pid 1000 nornd-new",
        testdata!("debian/dk4096-be32-1000-nornd-new.spki.pem"),
    ),
];

const GOOD_RSA_SPKIS: [(&str, &str); 6] = [
    ("rsa2048", testdata!("good/rsa2048.spki.pem")),
    ("rsa3072", testdata!("good/rsa3072.spki.pem")),
    ("rsa4096", testdata!("good/rsa4096.spki.pem")),
    ("rsa-pss2048", testdata!("good/rsa-pss2048.spki.pem")),
    ("roca cert01", testdata!("good/cert01.spki.pem")),
    ("roca pubkey01", testdata!("good/pubkey01.spki.pem")),
];

const NON_RSA_SPKIS: [(&str, &str); 2] = [
    ("ec-p256", testdata!("good/ec-p256.spki.pem")),
    ("ed25519", testdata!("good/ed25519.spki.pem")),
];

fn all_spkis() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROCA_SPKIS
        .into_iter()
        .chain(DEBIAN_SPKIS)
        .chain(GOOD_RSA_SPKIS)
        .chain(NON_RSA_SPKIS)
        .chain([(
            "debian 1024",
            testdata!("debian/dk1024-le32-1000-rnd.spki.pem"),
        )])
}

#[test]
fn reason_codes() {
    assert_eq!(
        Vulnerability::Roca.reason_code(),
        "CERTIFICATE_KEY_VULNERABILITY_CVE-2017-15361"
    );
    assert_eq!(
        Vulnerability::DebianPredictable.reason_code(),
        "CERTIFICATE_KEY_VULNERABILITY_CVE-2008-0166"
    );
    for v in [Vulnerability::Roca, Vulnerability::DebianPredictable] {
        assert!(v.reason_code().ends_with(v.cve()));
        assert!(v.reason().contains(v.cve()));
    }
}

#[test]
fn roca_prime_layout_is_the_detectors() {
    let mut ordered: Vec<u32> = roca::TABLES.iter().map(|t| t.prime).collect();
    ordered.sort_unstable();
    assert_eq!(ordered, roca::DETECTOR_PRIMES);
    let mut next = 0;
    for group in &roca::GROUPS {
        assert_eq!(group.start, next);
        next = group.end;
        let product: u64 = roca::TABLES[group.start..group.end]
            .iter()
            .map(|t| u64::from(t.prime))
            .product();
        assert_eq!(group.modulus, product);
        assert!(group.modulus < 1 << 58, "limb sums would overflow");
        assert!(
            group.reduce(&[0xff; 8 * 64 * 3]) < group.modulus,
            "residues stay below 2^58"
        );
    }
    assert_eq!(next, roca::TABLES.len());
}

#[test]
fn roca_subgroups_match_detector_prints() {
    // `RocaFingerprinter.prints` in roca/detect.py, for the primes up to 127 (the
    // ones whose bitmask fits a u128): bit r set iff r is in <65537 mod p>.
    const PRINTS: [u128; 30] = [
        6,
        30,
        126,
        1026,
        5658,
        107286,
        199410,
        8388606,
        536870910,
        2147483646,
        67109890,
        2199023255550,
        8796093022206,
        140737488355326,
        5310023542746834,
        576460752303423486,
        1455791217086302986,
        147573952589676412926,
        20052041432995567486,
        6041388139249378920330,
        207530445072488465666,
        9671406556917033397649406,
        618970019642690137449562110,
        79228162521181866724264247298,
        2535301200456458802993406410750,
        1760368345969468176824550810518,
        50079290986288516948354744811034,
        473022961816146413042658758988474,
        10384593717069655257060992658440190,
        144390480366845522447407333004847678774,
    ];
    for (&p, &print) in roca::DETECTOR_PRIMES.iter().zip(&PRINTS) {
        let table = roca::TABLES.iter().find(|t| t.prime == p).unwrap();
        for r in 0..p {
            assert_eq!(
                table.in_subgroup(r),
                (print >> r) & 1 == 1,
                "p = {p}, r = {r}"
            );
        }
    }
}

#[test]
fn roca_generator_order_is_the_detectors() {
    // DlogFprint.generator_order for the primorial of 167.
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let lcm = roca::TABLES
        .iter()
        .map(|t| u64::from(t.order))
        .fold(1, |acc, o| acc / gcd(acc, o) * o);
    assert_eq!(lcm, 2_454_106_387_091_158_800);
}

#[test]
fn group_reduction_matches_schoolbook() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Lengths straddle the 512-byte block boundary and odd limb tails.
    for len in (0..40).chain([511, 512, 513, 1024, 1025, 1300, 2048 + 7]) {
        let n = rng.bytes(len);
        for group in &roca::GROUPS {
            let m = u128::from(group.modulus);
            let expected = n.iter().fold(0u128, |r, &b| (r * 256 + u128::from(b)) % m);
            assert_eq!(u128::from(group.reduce(&n)), expected, "len {len}");
        }
    }
}

#[test]
fn prime_remainders_are_exact() {
    let mut rng = Rng(3);
    let edges = [0, 1, 2, 255, 256, (1 << 58) - 1, (1 << 58) - 2, 1 << 57];
    for table in &roca::TABLES {
        let p = u64::from(table.prime);
        let multiples = (0..4).flat_map(|k| {
            let q = ((1u64 << 58) - 1) / p - k;
            [q * p, q * p - 1, q * p + p - 1]
        });
        let randoms = (0..2000).map(|_| rng.next() >> 6);
        for r in edges.into_iter().chain(multiples).chain(randoms) {
            assert_eq!(u64::from(table.rem(r)), r % p, "{r} mod {p}");
        }
    }
}

#[test]
fn roca_detector_positive_moduli() {
    for (name, hex) in ROCA_POSITIVE_MODULI {
        let n = hex_bytes(hex);
        assert_eq!(check_rsa_modulus(&n), Some(Vulnerability::Roca), "{name}");
        assert!(is_roca_modulus(&n), "{name}");
    }
}

#[test]
fn roca_detector_negative_moduli() {
    // mod06 and mod07 differ from the ROCA-positive mod03 in a single digit.
    for (name, hex) in ROCA_NEGATIVE_MODULI {
        let n = hex_bytes(hex);
        assert!(!is_roca_modulus(&n), "{name}");
        assert_eq!(check_rsa_modulus(&n), None, "{name}");
    }
}

#[test]
fn roca_positive_spkis() {
    for (name, pem) in ROCA_SPKIS {
        assert_eq!(
            check_spki(&pem_der(pem)),
            Some(Vulnerability::Roca),
            "{name}"
        );
    }
}

#[test]
fn roca_fake_moduli_pass_per_prime_test_only() {
    // The detector's test_fake_mods: each passes every per-prime subgroup test
    // but is not in the subgroup modulo the whole primorial.
    let fakes = testdata!("roca/fake_mods.hex");
    assert_eq!(fakes.lines().count(), 10);
    for line in fakes.lines() {
        let n = hex_bytes(line);
        assert!(roca::subgroup_logs(&n).is_some(), "{line}");
        assert!(!is_roca_modulus(&n), "{line}");
        assert_eq!(check_rsa_modulus(&n), None);
    }
}

#[test]
fn roca_powers_of_the_generator() {
    // 65537^k is in the subgroup by construction, which exercises the combined
    // (dlog) test on numbers of our own; the detector skips moduli below 2^256.
    assert!(!is_roca_modulus(&pow_65537(15)));
    assert!(is_roca_modulus(&pow_65537(16)));
    assert!(is_roca_modulus(&pow_65537(128)));
    // Even numbers are never invertible modulo the primorial.
    assert!(!is_roca_modulus(&mul_small(&pow_65537(64), 2)));
}

#[test]
fn leading_zeros_are_ignored() {
    let roca = hex_bytes(ROCA_POSITIVE_MODULI[2].1);
    let debian = rsa_modulus(&pem_der(DEBIAN_SPKIS[0].1)).unwrap().to_vec();
    for zeros in [1, 7, 8, 9, 600] {
        let pad = |n: &[u8]| [vec![0u8; zeros], n.to_vec()].concat();
        assert_eq!(check_rsa_modulus(&pad(&roca)), Some(Vulnerability::Roca));
        assert_eq!(
            check_rsa_modulus(&pad(&debian)),
            Some(Vulnerability::DebianPredictable)
        );
    }
    assert_eq!(check_rsa_modulus(&[]), None);
    assert_eq!(check_rsa_modulus(&[0, 0, 0]), None);
}

#[test]
fn debian_weak_spkis() {
    for (name, pem) in DEBIAN_SPKIS {
        let der = pem_der(pem);
        assert_eq!(
            check_spki(&der),
            Some(Vulnerability::DebianPredictable),
            "{name}"
        );
        assert!(is_debian_weak_modulus(rsa_modulus(&der).unwrap()));
    }
}

#[test]
fn debian_coverage_is_reported() {
    assert_eq!(debian_covered_key_sizes(), &[2048, 3072, 4096]);
    assert_eq!(debian_blocklist().len(), 1_179_648 + 168_923);
    // A genuine 1024-bit Debian weak key (openssl, le32, PID 1000, with .rnd):
    // the source data has no 1024-bit keys, and the API says so. If this starts
    // failing, 1024-bit data was added: add 1024 to the covered sizes too.
    let der = pem_der(testdata!("debian/dk1024-le32-1000-rnd.spki.pem"));
    assert_eq!(rsa_modulus(&der).map(|n| n.len() * 8), Some(1024));
    assert_eq!(check_spki(&der), None);
    assert!(!debian_covered_key_sizes().contains(&1024));
}

#[test]
fn embedded_blocklist_is_valid() {
    let list = DebianBlocklist::parse(debian::embedded_bytes()).expect("embedded data parses");
    assert_eq!(list.len(), debian_blocklist().len());
}

/// The fingerprint of entry `index` of the embedded data, rebuilt from its layout.
fn embedded_entry(index: usize) -> [u8; DEBIAN_FINGERPRINT_LEN] {
    let bytes = debian::embedded_bytes();
    let covered = usize::from(bytes[11]);
    let offsets_at = 12 + covered * 2 + 4;
    let entries_at = offsets_at + 65537 * 4;
    let offset = |b: usize| {
        let o = &bytes[offsets_at + b * 4..offsets_at + b * 4 + 4];
        u32::from_le_bytes(o.try_into().unwrap()) as usize
    };
    let bucket = (0..65536).find(|&b| offset(b + 1) > index).unwrap();
    let mut fp = [0u8; DEBIAN_FINGERPRINT_LEN];
    fp[..2].copy_from_slice(&(bucket as u16).to_be_bytes());
    fp[2..].copy_from_slice(&bytes[entries_at + index * 4..entries_at + index * 4 + 4]);
    fp
}

#[test]
fn debian_fingerprint_lookup() {
    let list = debian_blocklist();
    for index in [0, 1, 654_321, list.len() - 1] {
        let fp = embedded_entry(index);
        assert!(list.contains_fingerprint(&fp), "entry {index}");
        let mut near = fp;
        near[DEBIAN_FINGERPRINT_LEN - 1] ^= 1;
        // Neighbouring fingerprints are ~2^48 / 1.35M apart; a one-bit change
        // lands on another entry with negligible probability.
        assert!(!list.contains_fingerprint(&near), "entry {index} ^ 1");
    }
    let weak = pem_der(DEBIAN_SPKIS[1].1);
    let fp = debian_fingerprint(rsa_modulus(&weak).unwrap());
    assert!(list.contains_fingerprint(&fp));
}

/// A blocklist file in the embedded format, for loader tests only.
fn build_blocklist(fps: &[[u8; DEBIAN_FINGERPRINT_LEN]], covered: &[u16]) -> Vec<u8> {
    let mut fps = fps.to_vec();
    fps.sort_unstable();
    fps.dedup();
    let mut out = b"PKQDWK01".to_vec();
    out.extend_from_slice(&[1, 2, 4, covered.len() as u8]);
    for size in covered {
        out.extend_from_slice(&size.to_le_bytes());
    }
    out.extend_from_slice(&(fps.len() as u32).to_le_bytes());
    let mut offset = 0u32;
    out.extend_from_slice(&0u32.to_le_bytes());
    for bucket in 0..=u16::MAX {
        offset += fps
            .iter()
            .filter(|fp| u16::from_be_bytes([fp[0], fp[1]]) == bucket)
            .count() as u32;
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for fp in &fps {
        out.extend_from_slice(&fp[2..]);
    }
    out
}

#[test]
fn blocklist_loader_round_trip() {
    let listed: Vec<Vec<u8>> = GOOD_RSA_SPKIS[..3]
        .iter()
        .map(|(_, pem)| rsa_modulus(&pem_der(pem)).unwrap().to_vec())
        .collect();
    let fps: Vec<_> = listed.iter().map(|n| debian_fingerprint(n)).collect();
    let bytes = build_blocklist(&fps, &[1024]);
    let list = DebianBlocklist::parse(&bytes).unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.covered_key_sizes(), &[1024]);
    for n in &listed {
        assert!(list.contains_modulus(n));
    }
    let other = pem_der(GOOD_RSA_SPKIS[3].1);
    assert!(!list.contains_modulus(rsa_modulus(&other).unwrap()));

    let empty_bytes = build_blocklist(&[], &[]);
    let empty = DebianBlocklist::parse(&empty_bytes).unwrap();
    assert!(empty.is_empty());
    assert!(!empty.contains_modulus(&listed[0]));
    assert!(!DebianBlocklist::empty().contains_modulus(&listed[0]));
}

#[test]
fn blocklist_loader_rejects_corruption() {
    let fps = [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], [9, 9, 9, 9, 9, 9]];
    let good = build_blocklist(&fps, &[2048]);
    assert!(DebianBlocklist::parse(&good).is_ok());
    let parse = |b: &[u8]| DebianBlocklist::parse(b).map(|l| l.len());

    assert_eq!(parse(&good[..5]), Err(BlocklistError::BadMagic));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(parse(&bad), Err(BlocklistError::BadMagic));
    for at in 8..12 {
        let mut bad = good.clone();
        bad[at] = 99;
        assert_eq!(parse(&bad), Err(BlocklistError::UnsupportedFormat), "{at}");
    }
    assert_eq!(
        parse(&good[..good.len() - 1]),
        Err(BlocklistError::SizeMismatch)
    );
    assert_eq!(
        parse(&[good.as_slice(), &[0]].concat()),
        Err(BlocklistError::SizeMismatch)
    );
    // Entry count (after the header and one covered size) claims one more entry.
    let mut bad = good.clone();
    bad[14] += 1;
    assert_eq!(parse(&bad), Err(BlocklistError::SizeMismatch));
    // First offset not zero.
    let offsets_at = 12 + 2 + 4;
    let mut bad = good.clone();
    bad[offsets_at] = 1;
    assert_eq!(parse(&bad), Err(BlocklistError::BadOffsets));
    // Swap the two entries of bucket 0x0102.
    let entries_at = offsets_at + 65537 * 4;
    let mut bad = good.clone();
    bad[entries_at + 3] = 7;
    bad[entries_at + 7] = 6;
    assert_eq!(parse(&bad), Err(BlocklistError::Unsorted));
}

#[test]
fn good_rsa_keys_pass() {
    for (name, pem) in GOOD_RSA_SPKIS {
        let der = pem_der(pem);
        assert!(rsa_modulus(&der).is_some(), "{name}");
        assert_eq!(check_spki(&der), None, "{name}");
    }
}

#[test]
fn non_rsa_keys_are_never_vulnerable() {
    for (name, pem) in NON_RSA_SPKIS {
        let der = pem_der(pem);
        assert!(der::parse_spki(&der) == Some(der::SpkiKey::Other), "{name}");
        assert_eq!(rsa_modulus(&der), None, "{name}");
        assert_eq!(check_spki(&der), None, "{name}");
    }
}

#[test]
fn random_moduli_pass() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let mut n = rng.bytes(256);
        n[0] |= 0x80;
        n[255] |= 1;
        assert_eq!(check_rsa_modulus(&n), None);
    }
}

#[test]
fn malformed_spkis_are_none() {
    assert_eq!(check_spki(&[]), None);
    assert_eq!(check_spki(&[0x30]), None);
    assert_eq!(check_spki(&[0x30, 0x80, 0, 0]), None);
    assert_eq!(check_spki(&[0x30, 0x85, 1, 0, 0, 0, 0]), None);
    assert_eq!(check_spki(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);

    let roca = pem_der(ROCA_SPKIS[0].1);
    // Trailing bytes after the SPKI.
    assert_eq!(check_spki(&[roca.as_slice(), &[0]].concat()), None);
    // Every proper prefix.
    for len in 0..roca.len() {
        assert_eq!(check_spki(&roca[..len]), None, "prefix {len}");
    }

    // A negative modulus (top bit set without the 0x00 sign byte).
    let good = pem_der(GOOD_RSA_SPKIS[0].1);
    let n = rsa_modulus(&good).unwrap();
    let at = good
        .windows(n.len())
        .position(|w| w == n)
        .expect("modulus in SPKI");
    assert_eq!(good[at - 1], 0x00, "DER sign byte");
    let mut negative = good.clone();
    negative[at - 1] = 0xff;
    assert_eq!(check_spki(&negative), None);
}

#[test]
fn mangled_spkis_never_panic() {
    let mut rng = Rng(7);
    for (_, pem) in all_spkis() {
        let der = pem_der(pem);
        for len in 0..=der.len() {
            let _ = check_spki(&der[..len]);
        }
        for at in 0..der.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0x81, 0x84, 0xff, der[at] ^ 0x20] {
                let mut bad = der.clone();
                bad[at] = value;
                let _ = check_spki(&bad);
            }
        }
        for _ in 0..200 {
            let mut bad = der.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = rng.next() as usize % bad.len();
                bad[at] = rng.next() as u8;
            }
            let _ = check_spki(&bad);
        }
    }
    for _ in 0..2000 {
        let len = rng.next() as usize % 64;
        let mut junk = rng.bytes(len);
        if let Some(first) = junk.first_mut() {
            *first = 0x30;
        }
        let _ = check_spki(&junk);
    }
}
