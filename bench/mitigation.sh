#!/usr/bin/env bash
# Benchmark: an audit mitigation actions task over THINGS findings (1,000,000 by default),
# one UPDATE_DEVICE_CERTIFICATE execution each; DescribeAuditMitigationActionsTask is
# asked at a steady RATE while the task runs.
#
# 1. builds release binaries (palisade, palisade-loadgen), unless SKIP_BUILD=1;
# 2. generates the fleet once with `palisade-loadgen fleet --expiring-per-mille 1000` (every
#    device certificate expires within 30 days, so each one is a finding of
#    DEVICE_CERTIFICATE_EXPIRING_CHECK) and caches it under target/bench-fleet/
#    (mitigation-fleet-THINGS.jsonl);
# 3. prepares, once per engine, a base copy of the data (REPREPARE=1 starts over): a fresh
#    `palisade serve`, `palisade fleet import` next to it, then `palisade-loadgen audit` of
#    DEVICE_CERTIFICATE_EXPIRING_CHECK alone (THINGS findings). SQLite: the data dir
#    target/bench-fleet/mitigation-base-sqlite-THINGS; PostgreSQL: the database
#    palisade_bench_mitigation_base_THINGS (and a data dir for the credential);
# 4. every run starts from a copy of the base (the task deactivates every certificate, so
#    the base itself is never served): SQLite copies the data dir, PostgreSQL creates the
#    run's database from the base as a template;
# 5. starts a fresh `palisade serve` on the copy and runs `palisade-loadgen mitigate`:
#    creates the action, starts the task over the audit and sends
#    DescribeAuditMitigationActionsTask at RATE req/s until it ends;
# 6. prints executions per second end to end (StartAuditMitigationActionsTask sent to the
#    first Describe answer saying COMPLETED), the server's peak RSS (VmHWM of a process
#    started just before the task) and Describe's p50/p99/max, against the targets
#    (50,000 executions/s, 512 MiB, p99 50 ms), and one Markdown table row.
#
# Usage: bench/mitigation.sh [sqlite|postgres]        (default sqlite; or ENGINE=...)
# Environment overrides:
#   THINGS (1000000)  RATE (20)
#   REPREPARE=1  SKIP_BUILD=1  PG_ADMIN_URL  PALISADE_BIN / LOADGEN_BIN
#   SERVE_ARGS (extra `palisade serve` flags)  STRICT=1 (exit 3 if a target is missed)
#   PERF_RECORD=1 (perf profile of the server during the task, target/bench-fleet/perf-mitigation.data)
#   PALISADE_LOG (server log filter; the last server log is kept in
#   target/bench-fleet/last-mitigation-server-ENGINE.log)
#   PG_ANALYZE=1 (PostgreSQL: ANALYZE the run's copy first, as autovacuum would some time
#   after the audit; this machine's PostgreSQL runs with autovacuum off)
#
# The base holds an audit made when it was prepared; audits are purged after 90 days,
# so a base older than that is prepared again (REPREPARE=1). It is also prepared again
# when the engine's migrations (crates/store/migrations/ENGINE) change, since an edited
# migration would never reach a base that already ran it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE="${1:-${ENGINE:-sqlite}}"
THINGS="${THINGS:-1000000}"
RATE="${RATE:-20}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PALISADE_BIN="${PALISADE_BIN:-$ROOT/target/release/palisade}"
LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/palisade-loadgen}"
ACCOUNT=000000000000
CHECK=DEVICE_CERTIFICATE_EXPIRING_CHECK
ACTION=bench-deactivate
CACHE="$ROOT/target/bench-fleet"
FLEET="$CACHE/mitigation-fleet-$THINGS.jsonl"
BASE="$CACHE/mitigation-base-$ENGINE-$THINGS"
MARKER="$BASE/.bench-prepared"
RUN="$CACHE/mitigation-run-$ENGINE-$THINGS"
PG_BASE="palisade_bench_mitigation_base_$THINGS"
PG_RUN="palisade_bench_mitigation_run_$THINGS"
read -r -a EXTRA_SERVE <<<"${SERVE_ARGS:-}"

case "$ENGINE" in
  sqlite | postgres) ;;
  *) echo "engine must be sqlite or postgres, not '$ENGINE'" >&2; exit 2 ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/palisade-mitigation.XXXXXX")"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
STOP_TENTHS=300
bench_traps mitigation.sh "$CACHE/last-mitigation-server-$ENGINE.log"

# db_args DATABASE: the `--database-url` flags for the engine.
db_args() {
  if [[ "$ENGINE" == postgres ]]; then
    printf '%s\n' --database-url "${PG_ADMIN_URL%/*}/$1"
  fi
}

# start_server DATA_DIR DATABASE: starts `palisade serve`; sets SERVER_PID, ENDPOINT, AKID, SECRET.
start_server() {
  local -a db
  mapfile -t db < <(db_args "$2")
  serve_palisade "$1" 120 "${db[@]}" "${EXTRA_SERVE[@]}"
}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "==> building release binaries"
  (cd "$ROOT" && cargo build --release -p palisade -p palisade-loadgen)
fi
[[ -x "$PALISADE_BIN" && -x "$LOADGEN_BIN" ]] || { echo "missing release binaries" >&2; exit 1; }
mkdir -p "$CACHE"

if [[ ! -s "$FLEET" ]]; then
  echo "==> generating $FLEET ($THINGS devices, all expiring within 30 days; cached for later runs)"
  /usr/bin/time -f "generated in %e s (max RSS %M KiB)" \
    "$LOADGEN_BIN" fleet --out "$FLEET" --things "$THINGS" --expiring-per-mille 1000 \
    --account-id "$ACCOUNT"
fi
echo "==> fleet: $FLEET ($(du -h "$FLEET" | cut -f1))"

SCHEMA="$(cat "$ROOT"/crates/store/migrations/"$ENGINE"/*.sql | sha256sum | cut -c1-16)"
if [[ -f "$MARKER" && "$(sed -n 2p "$MARKER")" != "$SCHEMA" ]]; then
  echo "==> the $ENGINE migrations changed since the base was prepared: preparing it again"
  REPREPARE=1
fi
if [[ "${REPREPARE:-0}" == 1 || ! -f "$MARKER" ]]; then
  echo "==> preparing the $ENGINE base ($BASE): import, then an audit of $CHECK"
  rm -rf "$BASE"
  mkdir -p "$BASE"
  if [[ "$ENGINE" == postgres ]]; then
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_BASE WITH (FORCE)"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_BASE"
  fi
  start_server "$BASE" "$PG_BASE"
  mapfile -t base_db < <(db_args "$PG_BASE")
  /usr/bin/time -f "imported in %e s (max RSS %M KiB)" \
    "$PALISADE_BIN" fleet import "$FLEET" --account-id "$ACCOUNT" --data-dir "$BASE" \
    "${base_db[@]}" --errors-file "$WORK/import-errors.jsonl"
  "$LOADGEN_BIN" audit --endpoint "$ENDPOINT" --access-key "$AKID" --secret "$SECRET" \
    --checks "$CHECK" --rate 5 --timeout 30m --json >"$WORK/audit.json"
  AUDIT_ID="$(python3 - "$WORK/audit.json" "$CHECK" "$THINGS" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
c = r["checks"][sys.argv[2]]
if c["nonCompliant"] != int(sys.argv[3]):
    sys.exit(f"the audit found {c['nonCompliant']} non-compliant certificates, not {sys.argv[3]}")
print(r["taskId"])
PY
)"
  stop_server
  printf '%s\n%s\n' "$AUDIT_ID" "$SCHEMA" >"$MARKER"
  echo "==> base ready: audit $AUDIT_ID"
else
  AUDIT_ID="$(sed -n 1p "$MARKER")"
  echo "==> reusing the $ENGINE base in $BASE (audit $AUDIT_ID; REPREPARE=1 to start over)"
fi

echo "==> copying the base for this run"
rm -rf "$RUN"
/usr/bin/time -f "copied in %e s" cp -a "$BASE" "$RUN"
# The copy leaves gigabytes of dirty pages; written back during the task, they would
# compete with its fsyncs, which measures the copy rather than the task.
/usr/bin/time -f "synced in %e s" sync
if [[ "$ENGINE" == postgres ]]; then
  psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_RUN WITH (FORCE)"
  /usr/bin/time -f "database copied in %e s" \
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_RUN TEMPLATE $PG_BASE"
  if [[ "${PG_ANALYZE:-0}" == 1 ]]; then
    /usr/bin/time -f "analyzed in %e s" psql "${PG_ADMIN_URL%/*}/$PG_RUN" -qc "ANALYZE"
  fi
fi

echo "==> palisade serve ($ENGINE), fresh process on the copy"
start_server "$RUN" "$PG_RUN"
echo "==> mitigation task; DescribeAuditMitigationActionsTask at $RATE req/s while it runs"
set +e
PERF_PID=""
if [[ "${PERF_RECORD:-0}" == 1 ]]; then
  # A CPU profile of the server during the task: perf report -i target/bench-fleet/perf-mitigation.data
  perf record -F 499 -g -p "$SERVER_PID" -o "$CACHE/perf-mitigation.data" >/dev/null 2>&1 &
  PERF_PID=$!
fi
"$LOADGEN_BIN" mitigate --endpoint "$ENDPOINT" --access-key "$AKID" --secret "$SECRET" \
  --name "$ACTION" --audit-task-id "$AUDIT_ID" --check "$CHECK" --rate "$RATE" --timeout 30m \
  --json >"$WORK/mitigate.json"
mitigate_rc=$?
if [[ -n "$PERF_PID" ]]; then
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
fi
set -e
HWM_KB="$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")"
RSS_KB="$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")"
stop_server
if [[ "$ENGINE" == postgres ]]; then
  psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_RUN WITH (FORCE)" || true
fi
[[ "${KEEP_RUN:-0}" == 1 ]] || rm -rf "$RUN"
[[ $mitigate_rc -eq 0 ]] || { echo "palisade-loadgen mitigate failed (exit $mitigate_rc)" >&2; exit "$mitigate_rc"; }

verdict=0
python3 - "$WORK/mitigate.json" "$HWM_KB" "$RSS_KB" "$ENGINE" "$THINGS" "$RATE" <<'PY' || verdict=$?
import datetime, json, sys
path, hwm_kb, rss_kb, engine, things, rate = sys.argv[1:7]
r = json.loads(open(path).read().strip().splitlines()[-1])
d = r["describe"]
hwm = int(hwm_kb) / 1024
eps = r["executionsPerSecond"]
server = r.get("serverSeconds")
print()
print(f"engine {engine}: {int(things):,} findings of DEVICE_CERTIFICATE_EXPIRING_CHECK, UPDATE_DEVICE_CERTIFICATE each")
print(f"task {r['taskId']}: {r['status']}, {r['executions']:,} executions in {r['wallSeconds']:.2f} s "
      f"(StartAuditMitigationActionsTask sent to COMPLETED seen): {eps:,.0f} executions/s")
print(f"  Start answered in {r['startCallMs']:.0f} ms; server endTime - startTime "
      + (f"{server:.2f} s ({r['executions'] / server:,.0f}/s)" if server else "-"))
print(f"  taskStatistics: {json.dumps(r['taskStatistics'])}")
print(f"server peak RSS (VmHWM): {hwm:.0f} MiB (VmRSS at the end {int(rss_kb) / 1024:.0f} MiB)")
print(f"DescribeAuditMitigationActionsTask at {rate} req/s: {d['requests']} answered, p50 {d['p50Ms']:.2f} ms, "
      f"p99 {d['p99Ms']:.2f} ms, p99.9 {d['p999Ms']:.2f} ms, max {d['maxMs']:.2f} ms, {d['errors']} error(s)")
misses = []
if eps < 50000: misses.append("executions/s < 50,000")
if hwm >= 512: misses.append("peak RSS >= 512 MiB")
if d["p99Ms"] >= 50: misses.append("Describe p99 >= 50 ms")
if r["executions"] != int(things): misses.append(f"{r['executions']} executions, not {things}")
print("targets: " + ("all met" if not misses else "MISSED: " + "; ".join(misses)))
print()
print("| date | engine | findings | wall time | executions/s | peak RSS | Describe p50 / p99 / max |")
print(f"| {datetime.date.today()} | {engine} | {int(things):,} | {r['wallSeconds']:.1f} s | {eps:,.0f} | "
      f"{hwm:.0f} MiB | {d['p50Ms']:.1f} / {d['p99Ms']:.1f} / {d['maxMs']:.1f} ms |")
print("result.json: " + json.dumps({**r, "engine": engine, "vmHwmKiB": int(hwm_kb)}, sort_keys=True))
sys.exit(3 if misses else 0)
PY
# 3: a target missed, which fails the run only with STRICT=1; anything else is a failure.
if [[ $verdict -eq 3 && "${STRICT:-0}" != 1 ]]; then verdict=0; fi
exit "$verdict"
