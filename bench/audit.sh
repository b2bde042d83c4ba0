#!/usr/bin/env bash
# Benchmark: an on-demand audit with every certificate and policy check (the three
# revocation checks and LOGGING_DISABLED_CHECK included) over a fleet of THINGS device
# certificates issued by CAS registered CAs, with POLICIES policies attached to them;
# DescribeAuditTask is asked at a steady RATE while the audit runs.
#
# 1. builds release binaries (palisade, palisade-loadgen), unless SKIP_BUILD=1;
# 2. generates the fleet once with `palisade-loadgen fleet` and caches it under
#    target/bench-fleet/ (audit-fleet-THINGS-CAS-POLICIES.jsonl, and .cas.jsonl);
# 3. imports it once per engine and caches the data (target/bench-fleet/audit-data-ENGINE-…,
#    or the PostgreSQL database palisade_bench_audit_…; REIMPORT=1 starts over): a fresh
#    `palisade serve`, its CAs registered through the API (`palisade-loadgen register-cas`),
#    then `palisade fleet import` next to it;
# 4. starts a fresh `palisade serve` on that data and runs `palisade-loadgen audit`: enables
#    the checks, starts the audit and sends DescribeAuditTask at RATE req/s until it ends;
# 5. prints the wall time from StartOnDemandAuditTask to COMPLETED, every check's result,
#    the server's peak RSS (VmHWM: the whole life of the process, which started just
#    before the audit) and DescribeAuditTask's p50/p99/max and errors, against the targets
#    (20 s, 512 MiB, p99 50 ms).
#
# Usage: bench/audit.sh [sqlite|postgres]        (default sqlite; or ENGINE=...)
# Environment overrides:
#   THINGS (1000000)  CAS (1000)  POLICIES (100000)  RATE (50)
#   EXPIRING_PER_MILLE (10: device certificates expiring within 30 days)
#   EXPIRING_CAS (10)  CRL_URL_BASE (unset: no CRL distribution points)
#   REIMPORT=1  SKIP_BUILD=1  PG_ADMIN_URL  PALISADE_BIN / LOADGEN_BIN
#   SERVE_ARGS (extra `palisade serve` flags)  STRICT=1 (exit 3 if a target is missed)
#   PERF_RECORD=1 (perf profile of the server during the audit, target/bench-fleet/perf.data)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE="${1:-${ENGINE:-sqlite}}"
THINGS="${THINGS:-1000000}"
CAS="${CAS:-1000}"
POLICIES="${POLICIES:-100000}"
RATE="${RATE:-50}"
EXPIRING_PER_MILLE="${EXPIRING_PER_MILLE:-10}"
EXPIRING_CAS="${EXPIRING_CAS:-10}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PALISADE_BIN="${PALISADE_BIN:-$ROOT/target/release/palisade}"
LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/palisade-loadgen}"
ACCOUNT=000000000000
CACHE="$ROOT/target/bench-fleet"
NAME="$THINGS-$CAS-$POLICIES"
[[ -n "${CRL_URL_BASE:-}" ]] && NAME="$NAME-crl"
FLEET="$CACHE/audit-fleet-$NAME.jsonl"
CA_FILE="$CACHE/audit-fleet-$NAME.cas.jsonl"
DATA="$CACHE/audit-data-$ENGINE-$NAME"
MARKER="$DATA/.bench-imported"
PG_DB="palisade_bench_audit_${NAME//-/_}"
read -r -a EXTRA_SERVE <<<"${SERVE_ARGS:-}"

case "$ENGINE" in
  sqlite) DB_ARGS=() ;;
  postgres) DB_ARGS=(--database-url "${PG_ADMIN_URL%/*}/$PG_DB") ;;
  *) echo "engine must be sqlite or postgres, not '$ENGINE'" >&2; exit 2 ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/palisade-audit.XXXXXX")"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
STOP_TENTHS=100
# The last server log stays, for the per-check timings (PALISADE_LOG=palisade_engine=debug).
bench_traps audit.sh "$CACHE/last-server-$ENGINE.log"

# Starts `palisade serve` on $DATA; sets SERVER_PID, ENDPOINT, AKID, SECRET.
start_server() {
  serve_palisade "$DATA" 60 "${DB_ARGS[@]}" "${EXTRA_SERVE[@]}"
}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "==> building release binaries"
  (cd "$ROOT" && cargo build --release -p palisade -p palisade-loadgen)
fi
[[ -x "$PALISADE_BIN" && -x "$LOADGEN_BIN" ]] || { echo "missing release binaries" >&2; exit 1; }
mkdir -p "$CACHE"

if [[ ! -s "$FLEET" || ( "$CAS" -gt 0 && ! -s "$CA_FILE" ) ]]; then
  echo "==> generating $FLEET ($THINGS devices, $CAS CAs, $POLICIES policies; cached for later runs)"
  crl_args=()
  [[ -n "${CRL_URL_BASE:-}" ]] && crl_args=(--crl-url-base "$CRL_URL_BASE")
  /usr/bin/time -f "generated in %e s (max RSS %M KiB)" \
    "$LOADGEN_BIN" fleet --out "$FLEET" --things "$THINGS" --cas "$CAS" --cas-out "$CA_FILE" \
    --expiring-cas "$EXPIRING_CAS" --policies "$POLICIES" \
    --expiring-per-mille "$EXPIRING_PER_MILLE" --account-id "$ACCOUNT" "${crl_args[@]}"
fi
echo "==> fleet: $FLEET ($(du -h "$FLEET" | cut -f1))"

if [[ "${REIMPORT:-0}" == 1 || ! -f "$MARKER" ]]; then
  echo "==> importing into a fresh $ENGINE database ($DATA)"
  rm -rf "$DATA"
  mkdir -p "$DATA"
  if [[ "$ENGINE" == postgres ]]; then
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_DB"
  fi
  start_server
  if [[ "$CAS" -gt 0 ]]; then
    "$LOADGEN_BIN" register-cas --endpoint "$ENDPOINT" --access-key "$AKID" --secret "$SECRET" \
      --file "$CA_FILE" --concurrency 8
  fi
  /usr/bin/time -f "imported in %e s (max RSS %M KiB)" \
    "$PALISADE_BIN" fleet import "$FLEET" --account-id "$ACCOUNT" --data-dir "$DATA" \
    "${DB_ARGS[@]}" --errors-file "$WORK/import-errors.jsonl" | tee "$WORK/import-summary.txt"
  stop_server
  echo "$FLEET" >"$MARKER"
else
  echo "==> reusing the imported data in $DATA (REIMPORT=1 to start over)"
fi

echo "==> palisade serve ($ENGINE), fresh process"
start_server
echo "==> audit; DescribeAuditTask at $RATE req/s while it runs"
set +e
PERF_PID=""
if [[ "${PERF_RECORD:-0}" == 1 ]]; then
  # A CPU profile of the server during the audit: perf report -i target/bench-fleet/perf.data
  perf record -F 499 -g -p "$SERVER_PID" -o "$CACHE/perf.data" >/dev/null 2>&1 &
  PERF_PID=$!
fi
"$LOADGEN_BIN" audit --endpoint "$ENDPOINT" --access-key "$AKID" --secret "$SECRET" \
  --rate "$RATE" --json >"$WORK/audit.json"
audit_rc=$?
if [[ -n "$PERF_PID" ]]; then
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
fi
set -e
HWM_KB="$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")"
RSS_KB="$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")"
stop_server
[[ $audit_rc -eq 0 ]] || { echo "palisade-loadgen audit failed (exit $audit_rc)" >&2; exit "$audit_rc"; }

verdict=0
python3 - "$WORK/audit.json" "$HWM_KB" "$RSS_KB" "$ENGINE" "$THINGS" "$CAS" "$POLICIES" "$RATE" <<'PY' || verdict=$?
import json, sys
path, hwm_kb, rss_kb, engine, things, cas, policies, rate = sys.argv[1:9]
r = json.loads(open(path).read().strip().splitlines()[-1])
d = r["describe"]
hwm = int(hwm_kb) / 1024
print()
print(f"engine {engine}: {int(things):,} device certificates, {int(cas):,} CAs, {int(policies):,} policies")
print(f"audit {r['taskId']}: {r['status']} in {r['wallSeconds']:.2f} s (StartOnDemandAuditTask to COMPLETED)")
for name, c in r["checks"].items():
    code = f" ({c['errorCode']})" if c.get("errorCode") else ""
    print(f"  {name:<62} {c['status']:<24} {c['nonCompliant']:>9,} of {c['total']:>9,}{code}")
print(f"server peak RSS (VmHWM): {hwm:.0f} MiB (VmRSS at the end {int(rss_kb) / 1024:.0f} MiB)")
print(f"DescribeAuditTask at {rate} req/s: {d['requests']} answered, p50 {d['p50Ms']:.2f} ms, "
      f"p99 {d['p99Ms']:.2f} ms, max {d['maxMs']:.2f} ms, {d['errors']} error(s)")
misses = []
if r["wallSeconds"] >= 20: misses.append("wall time >= 20 s")
if hwm >= 512: misses.append("peak RSS >= 512 MiB")
if d["p99Ms"] >= 50: misses.append("DescribeAuditTask p99 >= 50 ms")
failed = [n for n, c in r["checks"].items() if c["status"] == "FAILED"]
if failed: print(f"checks FAILED: {', '.join(failed)}")
print("targets: " + ("all met" if not misses else "MISSED: " + "; ".join(misses)))
print("result.json: " + json.dumps({**r, "engine": engine, "vmHwmKiB": int(hwm_kb)}, sort_keys=True))
sys.exit(3 if misses else 0)
PY
# 3: a target missed, which fails the run only with STRICT=1; anything else is a failure.
if [[ $verdict -eq 3 && "${STRICT:-0}" != 1 ]]; then verdict=0; fi
exit "$verdict"
