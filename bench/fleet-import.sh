#!/usr/bin/env bash
# Benchmark: `palisade fleet import` of a fleet of THINGS things, each with its own
# certificate (docs/IMPORT.md, the certificatePem shorthand), into a fresh database.
#
# 1. builds release binaries (palisade, palisade-loadgen);
# 2. generates the fleet once with `palisade-loadgen fleet` (one CA key signs THINGS
#    distinct certificates for one device key) and caches it under target/bench-fleet/;
# 3. per engine in ENGINES: a fresh SQLite data dir (target/bench-fleet/data-sqlite) or a
#    fresh PostgreSQL database (palisade_bench_fleet), then times the import with
#    /usr/bin/time (wall clock, CPU, peak memory) and checks its summary;
# 4. prints the figures. The imported data is kept for bench/registry-reads.sh.
#
# Environment overrides:
#   THINGS (1000000)  BATCH_SIZE (5000)  WORKERS (unset: one per core)
#   ENGINES ("sqlite")   e.g. "sqlite postgres"
#   PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres)
#   SKIP_BUILD=1      use the binaries already in target/release
#   PALISADE_BIN / LOADGEN_BIN
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THINGS="${THINGS:-1000000}"
BATCH_SIZE="${BATCH_SIZE:-5000}"
ENGINES="${ENGINES:-sqlite}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PALISADE_BIN="${PALISADE_BIN:-$ROOT/target/release/palisade}"
LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/palisade-loadgen}"
CACHE="$ROOT/target/bench-fleet"
FLEET="${FLEET:-$CACHE/fleet-$THINGS.jsonl}"
ACCOUNT=000000000000
PG_DB=palisade_bench_fleet

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "==> building release binaries"
  (cd "$ROOT" && cargo build --release -p palisade -p palisade-loadgen)
fi
[[ -x "$PALISADE_BIN" && -x "$LOADGEN_BIN" ]] || { echo "missing release binaries" >&2; exit 1; }
mkdir -p "$CACHE"

if [[ ! -s "$FLEET" ]]; then
  echo "==> generating $FLEET ($THINGS things with a certificate each; cached for later runs)"
  /usr/bin/time -f "generated in %e s (%U s user, %S s sys, max RSS %M KiB)" \
    "$LOADGEN_BIN" fleet --out "$FLEET" --things "$THINGS"
fi
echo "==> fleet: $FLEET ($(du -h "$FLEET" | cut -f1), $(wc -l <"$FLEET") lines)"

worker_args=()
[[ -n "${WORKERS:-}" ]] && worker_args=(--workers "$WORKERS")

for engine in $ENGINES; do
  db_args=()
  data="$CACHE/data-$engine"
  rm -rf "$data"
  mkdir -p "$data"
  if [[ "$engine" == postgres ]]; then
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_DB"
    db_args=(--database-url "${PG_ADMIN_URL%/*}/$PG_DB")
  fi
  # Drop the page cache's copy of nothing in particular: the fleet file stays cached
  # (it was just written or read), as it would be for an operator importing a file.
  sync
  echo "==> palisade fleet import ($engine, batch size $BATCH_SIZE)"
  /usr/bin/time -f "$engine: wall %e s, user %U s, sys %S s, max RSS %M KiB" -o "$CACHE/time-$engine.txt" \
    "$PALISADE_BIN" fleet import "$FLEET" --account-id "$ACCOUNT" --data-dir "$data" \
    --batch-size "$BATCH_SIZE" "${worker_args[@]}" "${db_args[@]}" \
    --errors-file "$CACHE/errors-$engine.jsonl" | tee "$CACHE/summary-$engine.txt"
  cat "$CACHE/time-$engine.txt"
  if [[ "$engine" == sqlite ]]; then
    echo "database: $(du -ch "$data"/palisade.db* | tail -1 | cut -f1)"
  else
    psql "$PG_ADMIN_URL" -Atc "SELECT 'database: ' || pg_size_pretty(pg_database_size('$PG_DB'))"
  fi
done
