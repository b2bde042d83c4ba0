//! Rough throughput of `check_spki` on random 2048-bit RSA keys and on an EC key:
//! `cargo run --release -p palisade-key-quality --example throughput`.

use std::hint::black_box;
use std::time::Instant;

/// DER length bytes.
fn der_len(len: usize) -> Vec<u8> {
    match len {
        0..=0x7f => vec![len as u8],
        0x80..=0xff => vec![0x81, len as u8],
        _ => vec![0x82, (len >> 8) as u8, len as u8],
    }
}

fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    [&[tag][..], &der_len(contents.len()), contents].concat()
}

fn rsa_spki(modulus: &[u8]) -> Vec<u8> {
    let n = tlv(0x02, &[&[0u8][..], modulus].concat());
    let e = tlv(0x02, &[0x01, 0x00, 0x01]);
    let key = tlv(0x30, &[n, e].concat());
    let alg = tlv(
        0x30,
        &[
            tlv(
                0x06,
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
            ),
            vec![0x05, 0x00],
        ]
        .concat(),
    );
    let bits = tlv(0x03, &[&[0u8][..], &key].concat());
    tlv(0x30, &[alg, bits].concat())
}

fn main() {
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let keys: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            let mut n: Vec<u8> = (0..256).map(|_| next() as u8).collect();
            n[0] |= 0x80;
            n[255] |= 1;
            rsa_spki(&n)
        })
        .collect();
    // Load the blocklist before timing.
    black_box(palisade_key_quality::check_spki(&keys[0]));

    let rounds = 1000;
    let start = Instant::now();
    let mut flagged = 0;
    for _ in 0..rounds {
        for key in &keys {
            flagged += usize::from(palisade_key_quality::check_spki(black_box(key)).is_some());
        }
    }
    let per = start.elapsed() / (rounds * keys.len() as u32);
    println!("RSA-2048 check_spki: {per:?} per key ({flagged} flagged)");

    // The modulus sits at a fixed offset in these SPKIs.
    assert_eq!(
        palisade_key_quality::rsa_modulus(&keys[0]),
        Some(&keys[0][33..289])
    );
    let start = Instant::now();
    for key in &keys {
        for _ in 0..rounds {
            black_box(palisade_key_quality::is_roca_modulus(black_box(
                &key[33..289],
            )));
        }
    }
    let per = start.elapsed() / (rounds * keys.len() as u32);
    println!("ROCA test alone: {per:?} per key");

    let start = Instant::now();
    for key in &keys {
        for _ in 0..rounds {
            black_box(palisade_key_quality::debian_fingerprint(black_box(
                &key[33..289],
            )));
        }
    }
    let per = start.elapsed() / (rounds * keys.len() as u32);
    println!("Debian fingerprint (SHA-256) alone: {per:?} per key");

    let ec = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    let ec: Vec<u8> = ec
        .iter()
        .copied()
        .chain(std::iter::repeat_n(7, 64))
        .collect();
    let start = Instant::now();
    for _ in 0..1_000_000 {
        black_box(palisade_key_quality::check_spki(black_box(&ec)));
    }
    println!(
        "EC P-256 check_spki: {:?} per key",
        start.elapsed() / 1_000_000
    );
}
