#!/usr/bin/env bash
# Benchmark: registry reads over an imported fleet (run bench/fleet-import.sh first):
# DescribeCertificate throughput, and paging through ListCertificates, with the signing
# load generator, against the same ceiling as bench/describe-mitigation-action.sh (a
# trivial axum handler answering a fixed Describe-shaped body).
#
# Per engine in ENGINES, `palisade serve` runs on the data bench/fleet-import.sh left
# (target/bench-fleet/data-sqlite, or the palisade_bench_fleet PostgreSQL database); on
# first start it creates the credential of account 000000000000, the fleet's account.
#
# Environment overrides:
#   CONNECTIONS (64)  DURATION (15s)  WARMUP (3s)  LIST_CONNECTIONS (4)  PAGE_SIZE (250)
#   THINGS (1000000: which cached fleet)  ENGINES ("sqlite")
#   ONLY=ceiling|palisade   SKIP_BUILD=1   PG_ADMIN_URL   PALISADE_BIN / LOADGEN_BIN
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONNECTIONS="${CONNECTIONS:-64}"
LIST_CONNECTIONS="${LIST_CONNECTIONS:-4}"
PAGE_SIZE="${PAGE_SIZE:-250}"
DURATION="${DURATION:-15s}"
WARMUP="${WARMUP:-3s}"
THINGS="${THINGS:-1000000}"
ENGINES="${ENGINES:-sqlite}"
ONLY="${ONLY:-both}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PALISADE_BIN="${PALISADE_BIN:-$ROOT/target/release/palisade}"
LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/palisade-loadgen}"
CACHE="$ROOT/target/bench-fleet"
FLEET="$CACHE/fleet-$THINGS.jsonl"
PG_DB=palisade_bench_fleet

WORK="$(mktemp -d "${TMPDIR:-/tmp}/palisade-reads.XXXXXX")"
RESULTS_DIR="${RESULTS_DIR:-$WORK/results}"
mkdir -p "$RESULTS_DIR"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_traps registry-reads.sh

load() { # load NAME ENDPOINT AKID SECRET CONNECTIONS EXTRA...
  local name="$1" endpoint="$2" akid="$3" secret="$4" conns="$5"
  shift 5
  "$LOADGEN_BIN" run --endpoint "$endpoint" --access-key "$akid" --secret "$secret" \
    --connections "$conns" --duration "$DURATION" --warmup "$WARMUP" --json "$@" \
    >"$RESULTS_DIR/$name.json"
}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cargo build --release -p palisade -p palisade-loadgen)
fi

if [[ "$ONLY" != palisade ]]; then
  PORT="$(free_port)"
  echo "==> ceiling server on 127.0.0.1:$PORT"
  "$LOADGEN_BIN" ceiling --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  wait_http "http://127.0.0.1:$PORT/mitigationactions/actions/bench-action" "$SERVER_PID" 30
  load ceiling "http://127.0.0.1:$PORT" AKIDCEILING ceiling-secret "$CONNECTIONS"
  stop_server
fi

if [[ "$ONLY" != ceiling ]]; then
  [[ -s "$FLEET" ]] || { echo "no fleet at $FLEET: run bench/fleet-import.sh first" >&2; exit 1; }
  # A certificate from the middle of the fleet: its id is the SHA-256 of its DER.
  CERT_ID="$(python3 - "$FLEET" "$THINGS" <<'PY'
import base64, hashlib, json, sys
target = int(sys.argv[2]) // 2
with open(sys.argv[1]) as f:
    for i, line in enumerate(f):
        if i == target:
            pem = json.loads(line)["certificatePem"]
            body = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
            print(hashlib.sha256(base64.b64decode(body)).hexdigest())
            break
PY
)"
  echo "==> certificate for DescribeCertificate: $CERT_ID"
  for engine in $ENGINES; do
    data="$CACHE/data-$engine"
    db_args=()
    [[ "$engine" == postgres ]] && db_args=(--database-url "${PG_ADMIN_URL%/*}/$PG_DB")
    [[ -d "$data" ]] || { echo "no imported data for $engine: run bench/fleet-import.sh" >&2; exit 1; }
    PORT="$(free_port)"
    echo "==> palisade serve ($engine) on 127.0.0.1:$PORT"
    "$PALISADE_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$data" "${db_args[@]}" \
      >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    wait_http "http://127.0.0.1:$PORT/healthz" "$SERVER_PID" 60
    for _ in $(seq 1 50); do
      [[ -s "$data/credentials" ]] && break
      sleep 0.1
    done
    AKID="$(ini_value "$data/credentials" palisade aws_access_key_id)"
    SECRET="$(ini_value "$data/credentials" palisade aws_secret_access_key)"
    load "describe-certificate-$engine" "http://127.0.0.1:$PORT" "$AKID" "$SECRET" "$CONNECTIONS" \
      --op describe-certificate --certificate-id "$CERT_ID"
    load "list-certificates-$engine" "http://127.0.0.1:$PORT" "$AKID" "$SECRET" "$LIST_CONNECTIONS" \
      --op list-certificates --page-size "$PAGE_SIZE"
    stop_server
  done
fi

python3 - "$RESULTS_DIR" "$CONNECTIONS" "$LIST_CONNECTIONS" "$DURATION" "$PAGE_SIZE" <<'PY'
import json, os, sys
results, conns, list_conns, duration, page = sys.argv[1:6]
rows = {}
for name in sorted(os.listdir(results)):
    with open(os.path.join(results, name)) as f:
        rows[name[:-5]] = json.loads(f.read().strip().splitlines()[-1])
print()
print(f"{duration} measured; describes on {conns} connections, listings on {list_conns} (pageSize {page})")
print(f"{'':30} {'req/s':>9} {'items/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
for name, r in rows.items():
    print(f"{name:30} {r['throughput_rps']:>9.0f} {r.get('items_per_s', 0):>10.0f} {r['p50_ms']:>8.3f} "
          f"{r['p90_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['max_ms']:>8.3f} {r['errors']:>7}")
c = rows.get("ceiling")
if c and c["throughput_rps"] > 0:
    for name, r in rows.items():
        if name.startswith("describe-certificate"):
            print(f"ratio {name}/ceiling: {r['throughput_rps'] / c['throughput_rps']:.3f}")
for name, r in rows.items():
    print(f"{name}.json: {json.dumps(r, sort_keys=True)}")
PY
