#!/usr/bin/env bash
# Benchmark: signed DescribeMitigationAction against the real server, compared with a ceiling.
#
# 1. builds release binaries (palisade, palisade-loadgen);
# 2. starts `palisade-loadgen ceiling` (a trivial axum server with a fixed Describe-like body)
#    on a free loopback port and runs the load generator against it;
# 3. starts `palisade serve` once per engine in ENGINES (SQLite in a fresh data dir, then a fresh
#    PostgreSQL database) on a free port, waits for /healthz,
#    reads the generated credentials, creates the action (`setup`) and runs the same load;
# 4. prints both results and the ratio palisade / ceiling.
# The two runs are strictly sequential: generator and server share a small machine.
#
# Environment overrides:
#   CONNECTIONS (64)  DURATION (20s)  WARMUP (3s)  MAX_REQUESTS (unset)  REGION (us-east-1)
#   ACTION_NAME (bench-action)
#   SKIP_BUILD=1      use the binaries already in target/release
#   ONLY=ceiling|palisade   run only one half
#   ENGINES ("sqlite postgres")  storage engines palisade runs on, one run each
#   PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres)  where the PostgreSQL
#                     run's throwaway database is created
#   PALISADE_BIN / LOADGEN_BIN   use these binaries instead of target/release/...
#   RESULTS_DIR       keep the JSON results there (default: a temp dir, removed on exit)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-20s}"
WARMUP="${WARMUP:-3s}"
REGION="${REGION:-us-east-1}"
ACTION_NAME="${ACTION_NAME:-bench-action}"
ONLY="${ONLY:-both}"
ENGINES="${ENGINES:-sqlite postgres}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PALISADE_BIN="${PALISADE_BIN:-$ROOT/target/release/palisade}"
LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/palisade-loadgen}"

case "$ONLY" in
  both | ceiling | palisade) ;;
  *) echo "ONLY must be ceiling, palisade or unset (got '$ONLY')" >&2; exit 2 ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/palisade-bench.XXXXXX")"
RESULTS_DIR="${RESULTS_DIR:-$WORK/results}"
mkdir -p "$RESULTS_DIR"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
PG_DB=""
bench_cleanup_extra() {
  if [[ -n "${PG_DB:-}" ]]; then
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" || true
  fi
}
bench_traps describe-mitigation-action.sh

run_load() { # run_load ENDPOINT OUTFILE ACCESS_KEY SECRET
  local args=(run --endpoint "$1" --access-key "$3" --secret "$4" --region "$REGION"
    --name "$ACTION_NAME" --connections "$CONNECTIONS" --duration "$DURATION"
    --warmup "$WARMUP" --json)
  if [[ -n "${MAX_REQUESTS:-}" ]]; then
    args+=(--max-requests "$MAX_REQUESTS")
  fi
  "$LOADGEN_BIN" "${args[@]}" >"$2"
}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "==> building release binaries"
  packages=(-p palisade-loadgen)
  [[ "$ONLY" != ceiling ]] && packages+=(-p palisade)
  (cd "$ROOT" && cargo build --release "${packages[@]}")
fi
[[ -x "$LOADGEN_BIN" ]] || { echo "missing $LOADGEN_BIN" >&2; exit 1; }

echo "==> settings: connections=$CONNECTIONS duration=$DURATION warmup=$WARMUP"

if [[ "$ONLY" != palisade ]]; then
  PORT="$(free_port)"
  echo "==> ceiling server on 127.0.0.1:$PORT"
  "$LOADGEN_BIN" ceiling --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  wait_http "http://127.0.0.1:$PORT/mitigationactions/actions/$ACTION_NAME" "$SERVER_PID" 30
  run_load "http://127.0.0.1:$PORT" "$RESULTS_DIR/ceiling.json" AKIDCEILING ceiling-secret
  stop_server
fi

# One palisade run per storage engine: the data dir's SQLite, and a fresh PostgreSQL
# database (created with psql through PG_ADMIN_URL, dropped afterwards).
run_palisade() {
  local engine="$1" db_args=()
  [[ -x "$PALISADE_BIN" ]] || { echo "missing $PALISADE_BIN" >&2; exit 1; }
  PORT="$(free_port)"
  DATA_DIR="$WORK/data-$engine"
  mkdir -p "$DATA_DIR"
  if [[ "$engine" == postgres ]]; then
    PG_DB="palisade_bench_$$_$RANDOM"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_DB"
    db_args=(--database-url "${PG_ADMIN_URL%/*}/$PG_DB")
  fi
  echo "==> palisade serve ($engine) on 127.0.0.1:$PORT (data dir $DATA_DIR)"
  "$PALISADE_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" --region "$REGION" \
    "${db_args[@]}" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  wait_http "http://127.0.0.1:$PORT/healthz" "$SERVER_PID" 30
  for _ in $(seq 1 50); do
    [[ -s "$DATA_DIR/credentials" ]] && break
    sleep 0.1
  done
  AKID="$(ini_value "$DATA_DIR/credentials" palisade aws_access_key_id)"
  SECRET="$(ini_value "$DATA_DIR/credentials" palisade aws_secret_access_key)"
  "$LOADGEN_BIN" setup --endpoint "http://127.0.0.1:$PORT" --access-key "$AKID" \
    --secret "$SECRET" --region "$REGION" --name "$ACTION_NAME"
  run_load "http://127.0.0.1:$PORT" "$RESULTS_DIR/palisade-$engine.json" "$AKID" "$SECRET"
  stop_server
  if [[ -n "${PG_DB:-}" ]]; then
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE $PG_DB WITH (FORCE)"
    PG_DB=""
  fi
}

if [[ "$ONLY" != ceiling ]]; then
  for engine in $ENGINES; do
    run_palisade "$engine"
  done
fi

python3 - "$RESULTS_DIR" "$CONNECTIONS" "$DURATION" <<'PY'
import json, os, sys
results, connections, duration = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for name in ("ceiling", "palisade-sqlite", "palisade-postgres"):
    path = os.path.join(results, name + ".json")
    if os.path.exists(path):
        with open(path) as f:
            rows[name] = json.loads(f.read().strip().splitlines()[-1])
print()
print(f"DescribeMitigationAction, {connections} connections, {duration} measured")
print(f"{'':17} {'req/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'requests':>10} {'errors':>7}")
for name, r in rows.items():
    print(f"{name:17} {r['throughput_rps']:>10.0f} {r['p50_ms']:>8.3f} {r['p90_ms']:>8.3f} "
          f"{r['p99_ms']:>8.3f} {r['max_ms']:>8.3f} {r['requests']:>10} {r['errors']:>7}")
c = rows.get("ceiling")
for name, p in rows.items():
    if name == "ceiling" or not c or c["throughput_rps"] <= 0:
        continue
    print(f"ratio {name}/ceiling: throughput {p['throughput_rps'] / c['throughput_rps']:.3f}", end="")
    if c["p99_ms"] > 0:
        print(f", p99 latency {p['p99_ms'] / c['p99_ms']:.2f}x", end="")
    print()
for name, r in rows.items():
    print(f"{name}.json: {json.dumps(r, sort_keys=True)}")
PY
