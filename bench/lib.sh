# Shared plumbing of the benchmark scripts: sourced, not run. The caller sets WORK (a
# scratch directory) before calling bench_traps.
#
# Server state: SERVER_PID, ENDPOINT, AKID, SECRET.

SERVER_PID=""

# stop_server [TENTHS]: SIGTERM the server, wait up to TENTHS tenths of a second (50) for
# it to drain, then SIGKILL.
stop_server() {
  local tenths="${1:-50}"
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 "$tenths"); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

# bench_traps NAME [KEEP_LOG]: on exit, stop the server, run the caller's
# bench_cleanup_extra if it defines one, show the server log's tail on failure, keep the
# server log as KEEP_LOG if given, and remove WORK.
bench_traps() {
  BENCH_NAME="$1"
  BENCH_KEEP_LOG="${2:-}"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_cleanup() {
  local rc=$?
  stop_server "${STOP_TENTHS:-50}"
  if declare -F bench_cleanup_extra >/dev/null; then
    bench_cleanup_extra || true
  fi
  if [[ $rc -ne 0 ]]; then
    echo "!! bench/$BENCH_NAME FAILED (exit $rc)" >&2
    if [[ -f "$WORK/server.log" ]]; then
      echo "---- last lines of the server log ----" >&2
      tail -n 40 "$WORK/server.log" >&2 || true
    fi
  fi
  if [[ -n "$BENCH_KEEP_LOG" && -f "$WORK/server.log" ]]; then
    cp "$WORK/server.log" "$BENCH_KEEP_LOG" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL PID SECONDS: poll until URL answers 200; fail if PID dies or time runs out.
wait_http() {
  local url="$1" pid="$2" timeout="$3"
  for _ in $(seq 1 $((timeout * 10))); do
    kill -0 "$pid" 2>/dev/null || { echo "server exited before becoming ready" >&2; return 1; }
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out after ${timeout}s waiting for $url" >&2
  return 1
}

# ini_value FILE PROFILE KEY
ini_value() {
  python3 - "$1" "$2" "$3" <<'PY'
import configparser, sys
cp = configparser.ConfigParser()
cp.read(sys.argv[1])
print(cp[sys.argv[2]][sys.argv[3]])
PY
}

# read_credentials DATA_DIR: AKID and SECRET from the credentials file `palisade serve`
# writes on first start (waiting up to 5 s for it).
read_credentials() {
  local data="$1"
  for _ in $(seq 1 50); do
    [[ -s "$data/credentials" ]] && break
    sleep 0.1
  done
  [[ -s "$data/credentials" ]] || { echo "no credentials file in $data" >&2; exit 1; }
  AKID="$(ini_value "$data/credentials" palisade aws_access_key_id)"
  SECRET="$(ini_value "$data/credentials" palisade aws_secret_access_key)"
}

# serve_palisade DATA_DIR SECONDS [SERVE_FLAGS...]: starts `palisade serve` ($PALISADE_BIN)
# on a free port with its log in $WORK/server.log, waits up to SECONDS for /healthz and
# reads the credential; sets SERVER_PID, ENDPOINT, AKID, SECRET.
serve_palisade() {
  local data="$1" timeout="$2" port
  shift 2
  port="$(free_port)"
  ENDPOINT="http://127.0.0.1:$port"
  "$PALISADE_BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" "$@" \
    >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  wait_http "$ENDPOINT/healthz" "$SERVER_PID" "$timeout" || exit 1
  read_credentials "$data"
}
