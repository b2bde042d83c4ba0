#!/usr/bin/env python3
"""Regenerate debian-weak-rsa.bin from badkeys 0.0.3's rsabl.dat.

Usage:
    pip download --no-deps --no-binary :all: -d /tmp/bk badkeys==0.0.3
    tar xzf /tmp/bk/badkeys-0.0.3.tar.gz -C /tmp/bk
    python3 make_blocklist.py /tmp/bk/badkeys-0.0.3/badkeys/keydata/rsabl.dat debian-weak-rsa.bin

Only the stdlib is needed. See README.md beside this script for the format.
"""
import hashlib
import struct
import sys

# rsabl.dat: sorted 16-byte records = first 15 bytes of SHA-256(modulus, minimal
# big-endian bytes) + 1 byte list id. Ids 3 and 4 are badkeys' "debian-ssl" and
# "debian-ssh" lists; the others (kompromat, houseofkeys, keypair, misc) are
# leaked keys, not CVE-2008-0166, and are left out.
DEBIAN_LISTS = {3, 4}
EXPECTED_SHA256 = "fded6c9999547fa1a7f2a85568bf3fdfa42b154eeb0371ef911636d5e0b6275c"

MAGIC = b"PKQDWK01"
HASH_KIND_SHA256_MODULUS = 1
PREFIX_BYTES = 2  # bucket index
STORED_BYTES = 4  # per entry, after the prefix
# Key sizes checked against genuine Debian weak keys (see README.md).
COVERED_SIZES = [2048, 3072, 4096]


def main(src, dst):
    data = open(src, "rb").read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != EXPECTED_SHA256:
        sys.exit(f"unexpected rsabl.dat (sha256 {digest})")
    if len(data) % 16:
        sys.exit("rsabl.dat length is not a multiple of 16")
    fps = set()
    for off in range(0, len(data), 16):
        if data[off + 15] in DEBIAN_LISTS:
            fps.add(data[off : off + PREFIX_BYTES + STORED_BYTES])
    fps = sorted(fps)
    counts = [0] * (1 << (8 * PREFIX_BYTES))
    for fp in fps:
        counts[int.from_bytes(fp[:PREFIX_BYTES], "big")] += 1
    offsets = [0]
    for c in counts:
        offsets.append(offsets[-1] + c)
    out = bytearray(MAGIC)
    out += bytes([HASH_KIND_SHA256_MODULUS, PREFIX_BYTES, STORED_BYTES, len(COVERED_SIZES)])
    for size in COVERED_SIZES:
        out += struct.pack("<H", size)
    out += struct.pack("<I", len(fps))
    out += struct.pack(f"<{len(offsets)}I", *offsets)
    for fp in fps:
        out += fp[PREFIX_BYTES:]
    open(dst, "wb").write(out)
    print(f"{len(fps)} fingerprints, {len(out)} bytes -> {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
