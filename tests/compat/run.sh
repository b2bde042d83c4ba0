#!/usr/bin/env bash
# Compatibility suite: boto3 and the AWS CLI (v1) against a freshly started `palisade serve`,
# and real MQTT devices (paho-mqtt, the AWS IoT Device SDK v2 for Python) through its gateway.
#
#   tests/compat/run.sh
#
# Environment:
#   PALISADE_BIN          use this binary instead of building target/release/palisade
#   PALISADE_TEST_FILTER  only run tests whose name contains this substring
#   PALISADE_TEST_VERBOSE=1   print tracebacks of failures
#   COMPAT_VENV           venv location (default tests/compat/.venv)
#   COMPAT_REINSTALL=1    reinstall boto3/awscli/moto/paho-mqtt/awsiotsdk into the venv
#   COMPAT_ENGINES        storage engines to run the suite on (default "sqlite postgres")
#   PG_ADMIN_URL          where the PostgreSQL run's throwaway database is created
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${COMPAT_VENV:-$HERE/.venv}"

# ---- python environment -------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "==> creating venv $VENV"
  python3 -m venv "$VENV"
fi
# moto (server mode) is the SNS and SQS the audit notification tests publish to and read.
MOTO_REQUIREMENT='moto[server]>=5.1,<6'
# The devices of the gateway tests: paho-mqtt 2.x (MQTT 3.1.1 and 5) and the AWS IoT Device
# SDK v2 for Python (awsiotsdk, on awscrt's MQTT client; awscrt ships manylinux wheels).
PAHO_REQUIREMENT='paho-mqtt>=2.1,<3'
AWSIOTSDK_REQUIREMENT='awsiotsdk>=1.22,<2'
if [[ "${COMPAT_REINSTALL:-0}" == 1 ]] || ! "$VENV/bin/python" -c 'import boto3, moto, paho.mqtt' 2>/dev/null \
  || [[ ! -x "$VENV/bin/aws" ]] || [[ ! -x "$VENV/bin/moto_server" ]]; then
  echo "==> installing boto3, awscli, $MOTO_REQUIREMENT and $PAHO_REQUIREMENT into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade boto3 awscli \
    "$MOTO_REQUIREMENT" "$PAHO_REQUIREMENT"
fi
# Installed on its own: if it cannot be installed here, pip's error is shown and
# test_awsiotsdk_round_trip fails saying so, while the rest of the suite still runs.
if [[ "${COMPAT_REINSTALL:-0}" == 1 ]] \
  || ! "$VENV/bin/python" -c 'from awscrt import mqtt; from awsiot import mqtt_connection_builder' 2>/dev/null; then
  echo "==> installing $AWSIOTSDK_REQUIREMENT into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
    "$AWSIOTSDK_REQUIREMENT" \
    || echo "WARNING: pip could not install $AWSIOTSDK_REQUIREMENT (see above); test_awsiotsdk_round_trip will fail" >&2
fi
"$VENV/bin/aws" --version
"$VENV/bin/python" -c '
from importlib.metadata import PackageNotFoundError, version
for name in ("paho-mqtt", "awsiotsdk", "awscrt"):
    try:
        print(name, version(name))
    except PackageNotFoundError:
        print(name, "not installed")
'

# ---- server binary ------------------------------------------------------------------------
if [[ -z "${PALISADE_BIN:-}" ]]; then
  echo "==> cargo build --release -p palisade"
  (cd "$ROOT" && cargo build --release -p palisade)
  PALISADE_BIN="$ROOT/target/release/palisade"
fi
[[ -x "$PALISADE_BIN" ]] || { echo "PALISADE_BIN=$PALISADE_BIN is not executable" >&2; exit 1; }
PALISADE_BIN="$(cd "$(dirname "$PALISADE_BIN")" && pwd)/$(basename "$PALISADE_BIN")"

# ---- one server and one suite run per storage engine ----------------------------------------
ENGINES="${COMPAT_ENGINES:-sqlite postgres}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/palisade-compat.XXXXXX")"
LOG=""
SERVER_PID=""
PG_DB=""
MOTO_PID=""
MOTO_LOG="$WORK/moto.log"

show_log() {
  [[ -n "$LOG" ]] || return 0
  echo "---- last 80 lines of the server log ($LOG) ----" >&2
  tail -n 80 "$LOG" >&2 || true
  echo "---- end of server log ----" >&2
}

stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

drop_database() {
  if [[ -n "$PG_DB" ]]; then
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" || true
    PG_DB=""
  fi
}

stop_moto() {
  if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  MOTO_PID=""
}

cleanup() {
  local rc=$?
  stop_server
  stop_moto
  if [[ $rc -ne 0 ]]; then
    show_log
    if [[ -s "$MOTO_LOG" ]]; then
      echo "---- last 30 lines of the moto log ($MOTO_LOG) ----" >&2
      tail -n 30 "$MOTO_LOG" >&2 || true
    fi
  fi
  drop_database
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

healthy() {
  "$VENV/bin/python" - "$1" <<'PY'
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=1).status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# run_suite ENGINE: starts a fresh server on ENGINE and runs the suite against it.
run_suite() {
  local engine="$1"
  local data_dir="$WORK/data-$engine"
  LOG="$WORK/server-$engine.log"
  mkdir -p "$data_dir"
  unset PALISADE_DATABASE_URL
  if [[ "$engine" == postgres ]]; then
    PG_DB="palisade_compat_$$_$RANDOM"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_DB"
    # Exported, so `palisade credentials ...` run by the suite reach the same database.
    export PALISADE_DATABASE_URL="${PG_ADMIN_URL%/*}/$PG_DB"
  fi

  local port endpoint mqtt_listen
  port="$(free_port)"
  endpoint="http://127.0.0.1:$port"
  # The device gateway on a port of its own (not the default 8883, which may be taken).
  mqtt_listen="127.0.0.1:$(free_port)"
  echo "==> [$engine] starting $PALISADE_BIN serve on $endpoint, MQTT gateway on $mqtt_listen"
  "$PALISADE_BIN" serve --listen "127.0.0.1:$port" --data-dir "$data_dir" --region us-east-1 \
    --mqtt-listen "$mqtt_listen" \
    --sns-endpoint-url "$MOTO_ENDPOINT" --sns-access-key-id testing --sns-secret-access-key testing \
    >"$LOG" 2>&1 &
  SERVER_PID=$!

  local ready=0
  for _ in $(seq 1 300); do # 30 s
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "server exited before becoming ready" >&2
      exit 1
    fi
    if healthy "$endpoint"; then
      ready=1
      break
    fi
    sleep 0.1
  done
  if [[ $ready != 1 ]]; then
    echo "server not ready after 30 s ($endpoint/healthz)" >&2
    exit 1
  fi
  for _ in $(seq 1 50); do
    [[ -s "$data_dir/credentials" ]] && break
    sleep 0.1
  done
  [[ -s "$data_dir/credentials" ]] || { echo "server wrote no $data_dir/credentials" >&2; exit 1; }
  for _ in $(seq 1 50); do
    [[ -s "$data_dir/mqtt-ca.pem" ]] && break
    sleep 0.1
  done
  [[ -s "$data_dir/mqtt-ca.pem" ]] || { echo "server wrote no $data_dir/mqtt-ca.pem" >&2; exit 1; }

  echo "==> [$engine] creating a credential for account 111122223333"
  "$PALISADE_BIN" credentials create --account-id 111122223333 --data-dir "$data_dir" \
    >"$WORK/second-account-$engine.json"

  echo "==> [$engine] running tests/compat/test_compat.py"
  local status
  set +e
  PALISADE_ENDPOINT="$endpoint" \
    PALISADE_MOTO_ENDPOINT="$MOTO_ENDPOINT" \
    PALISADE_DATA_DIR="$data_dir" \
    PALISADE_MQTT_LISTEN="$mqtt_listen" \
    PALISADE_BIN="$PALISADE_BIN" \
    PALISADE_SECOND_CREDENTIALS="$WORK/second-account-$engine.json" \
    "$VENV/bin/python" "$HERE/test_compat.py"
  status=$?
  set -e
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the server died during the tests" >&2
    status=1
  fi
  [[ $status == 0 ]] || exit "$status"
  stop_server
  drop_database
}

# ---- moto: one SNS/SQS for every run (tests name their topics and queues uniquely) -------
free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
MOTO_PORT="$(free_port)"
MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
echo "==> starting moto_server on $MOTO_ENDPOINT"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
moto_ready=0
for _ in $(seq 1 300); do # 30 s
  if ! kill -0 "$MOTO_PID" 2>/dev/null; then
    echo "moto_server exited before becoming ready" >&2
    cat "$MOTO_LOG" >&2 || true
    exit 1
  fi
  if "$VENV/bin/python" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
    "$MOTO_PORT" 2>/dev/null; then
    moto_ready=1
    break
  fi
  sleep 0.1
done
if [[ $moto_ready != 1 ]]; then
  echo "moto_server not listening on $MOTO_ENDPOINT after 30 s" >&2
  exit 1
fi

for engine in $ENGINES; do
  run_suite "$engine"
done
echo "==> compatibility suite passed on: $ENGINES"
