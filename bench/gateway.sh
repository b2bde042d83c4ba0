#!/usr/bin/env bash
# Benchmark: the device gateway (issue 15, "Performance").
#
# 1. builds release binaries (palisade, palisade-loadgen);
# 2. starts `palisade serve` (SQLite, fresh data dir, HTTP and gateway on free ports),
#    its broker picked by BACKEND: `mosquitto` (--mqtt-backend to the machine's
#    Mosquitto, MOSQUITTO_BACKEND, default 127.0.0.1:1883) or `embedded` (rumqttd in
#    the palisade process);
# 3. starts a second Mosquitto (/usr/sbin/mosquitto) with a TLS listener of its own on a
#    free port: require_certificate true, cafile the device CA, its own server
#    certificate (made by mqtt-setup under the device CA);
# 4. `palisade-loadgen mqtt-setup`: DEVICES ECDSA P-256 device certificates under a
#    device CA (cached in FLEET_DIR, registered anew in the fresh database: the CA with
#    RegisterCACertificate, the certificates ACTIVE with an allow-all policy through
#    POST /palisade/import), then restarts the server so that the memory figures are
#    those of a fresh process;
# 5. measures, one after the other:
#    a. hold: HOLD connections opened at HOLD_RATE/s and held HOLD_FOR; the server's
#       VmRSS (/proc/<pid>/status) before and while they are held, per held connection;
#    b. connect rate: CONNECT new connections offered at CONNECT_RATE/s (paced: the
#       achieved rate is what the gateway keeps up with; 0: a burst, as fast as
#       CONNECT_INFLIGHT attempts in flight allow), each a full TLS handshake with an
#       ECDSA P-256 client certificate, then closed;
#    c. QoS 0 publish throughput, PAIRS publishers and PAIRS subscribers at full speed,
#       against the TLS Mosquitto and through the gateway, side by side;
#    d. latency at half of the TLS Mosquitto's throughput (the gateway's floor under
#       target c), against both; added p99 = gateway p99 - Mosquitto p99;
# 6. prints a summary table (and keeps the JSON results in RESULTS_DIR if given).
#
# Targets (issue 15): a. 10,000 held, under 50 KiB of server memory each; b. at least
# 1,000 connections/s; c. gateway at least 0.5 of Mosquitto TLS; d. added p99 under 5 ms.
#
# Environment overrides:
#   BACKEND (mosquitto)   mosquitto | embedded
#   MOSQUITTO_BACKEND (127.0.0.1:1883)
#   HOLD (10000)  HOLD_RATE (1000)  HOLD_FOR (10s)
#   CONNECT (5000)  CONNECT_RATE (1200)  CONNECT_INFLIGHT (2000)
#   PAIRS (16)  PAYLOAD (64)  WARMUP (2s)  DURATION (10s)
#   HALF_OF (mosquitto)   mosquitto | gateway: whose throughput d. runs at half of
#   ONLY ("hold connect publish latency")   the steps to run
#   FLEET_DIR (target/bench-gateway-fleet)   device certificates, kept between runs
#   SKIP_BUILD=1   use the binaries already in target/release
#   PALISADE_BIN / LOADGEN_BIN / MOSQUITTO_BIN (/usr/sbin/mosquitto)
#   RESULTS_DIR    keep the JSON results there (default: a temp dir, removed on exit)
#   LATENCY_RATE   step d. at this many messages/s instead of half of HALF_OF's throughput
#                  (then step c. may be left out: ONLY=latency)
#   PERF_OUT       a perf profile of the server during step d.'s gateway run, written there
#   FD_CHECK=0     run even if the open-file hard limit is too low for HOLD/CONNECT
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BACKEND="${BACKEND:-mosquitto}"
MOSQUITTO_BACKEND="${MOSQUITTO_BACKEND:-127.0.0.1:1883}"
HOLD="${HOLD:-10000}"
HOLD_RATE="${HOLD_RATE:-1000}"
HOLD_FOR="${HOLD_FOR:-10s}"
CONNECT="${CONNECT:-5000}"
CONNECT_RATE="${CONNECT_RATE:-1200}"
CONNECT_INFLIGHT="${CONNECT_INFLIGHT:-2000}"
PAIRS="${PAIRS:-16}"
PAYLOAD="${PAYLOAD:-64}"
WARMUP="${WARMUP:-2s}"
DURATION="${DURATION:-10s}"
HALF_OF="${HALF_OF:-mosquitto}"
ONLY="${ONLY:-hold connect publish latency}"
FLEET_DIR="${FLEET_DIR:-$ROOT/target/bench-gateway-fleet}"
PALISADE_BIN="${PALISADE_BIN:-$ROOT/target/release/palisade}"
LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/palisade-loadgen}"
MOSQUITTO_BIN="${MOSQUITTO_BIN:-/usr/sbin/mosquitto}"

fail() { echo "!! bench/gateway.sh: $*" >&2; exit 1; }

# ---- prerequisites, checked before anything starts
case "$BACKEND" in
  mosquitto | embedded) ;;
  *) fail "BACKEND must be mosquitto or embedded (got '$BACKEND')" ;;
esac
case "$HALF_OF" in
  mosquitto | gateway) ;;
  *) fail "HALF_OF must be mosquitto or gateway (got '$HALF_OF')" ;;
esac
for step in $ONLY; do
  case "$step" in
    hold | connect | publish | latency) ;;
    *) fail "ONLY takes hold, connect, publish, latency (got '$step')" ;;
  esac
done
[[ -z "${LATENCY_RATE:-}" && " $ONLY " == *" latency "* && " $ONLY " != *" publish "* ]] &&
  fail "the latency step runs at half of the publish step's throughput: ONLY needs publish too"
for tool in python3 curl; do
  command -v "$tool" >/dev/null || fail "$tool is required"
done
[[ -x "$MOSQUITTO_BIN" ]] || fail "$MOSQUITTO_BIN not found (apt-get install mosquitto)"
port_open() { # port_open HOST:PORT
  python3 - "$1" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket()
s.settimeout(1)
try:
    s.connect((host, int(port)))
except OSError:
    sys.exit(1)
PY
}
if [[ "$BACKEND" == mosquitto ]]; then
  port_open "$MOSQUITTO_BACKEND" ||
    fail "no broker answers at MOSQUITTO_BACKEND=$MOSQUITTO_BACKEND (start Mosquitto, or BACKEND=embedded)"
fi

# Open files: the server holds two sockets per device connection (the device's and its
# broker connection), three with the embedded broker (its end of that connection too).
# FD_CHECK=0 runs anyway (the hold step then shows how many connections get through).
per_conn=2
[[ "$BACKEND" == embedded ]] && per_conn=3
has() { [[ " $ONLY " == *" $1 "* ]]; }
largest=$((4 * PAIRS))
has hold && ((HOLD > largest)) && largest=$HOLD
has connect && ((CONNECT > largest)) && largest=$CONNECT
need=$((per_conn * largest + 2048))
if (($(ulimit -Hn) < need)); then
  if ! ulimit -Hn "$need" 2>/dev/null; then
    msg="the open-file hard limit is $(ulimit -Hn), below the $need the server needs for $largest connections ($per_conn descriptors each with BACKEND=$BACKEND, plus 2,048) and it cannot be raised here (that takes CAP_SYS_RESOURCE): lower HOLD/CONNECT, or FD_CHECK=0 to run anyway"
    [[ "${FD_CHECK:-1}" == 0 ]] || fail "$msg"
    echo "warning: $msg" >&2
  fi
fi
ulimit -Sn "$(ulimit -Hn)"
if [[ "$BACKEND" == mosquitto ]]; then
  # The machine's Mosquitto holds one socket per device connection too.
  mpid="$(pgrep -o -x mosquitto || true)"
  if [[ -n "$mpid" && -r "/proc/$mpid/limits" ]]; then
    mlimit="$(awk '/Max open files/ {print $4}' "/proc/$mpid/limits")"
    if [[ "$mlimit" =~ ^[0-9]+$ ]] && ((mlimit < largest + 100)); then
      fail "the Mosquitto at $MOSQUITTO_BACKEND (pid $mpid) may open $mlimit files: fewer than $largest connections need"
    fi
  fi
fi
read -r port_lo port_hi </proc/sys/net/ipv4/ip_local_port_range
((port_hi - port_lo > 2 * largest)) ||
  fail "ip_local_port_range $port_lo-$port_hi is too narrow for $largest connections and their broker connections"

# One device certificate per connection of the largest step run (publish: 2 per pair, and
# as many again to spare).
DEVICES=$largest

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "==> building release binaries"
  (cd "$ROOT" && cargo build --release -j 2 -p palisade -p palisade-loadgen)
fi
[[ -x "$PALISADE_BIN" && -x "$LOADGEN_BIN" ]] || fail "missing release binaries ($PALISADE_BIN, $LOADGEN_BIN)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/palisade-bench-gw.XXXXXX")"
RESULTS_DIR="${RESULTS_DIR:-$WORK/results}"
mkdir -p "$RESULTS_DIR" "$FLEET_DIR"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
MOSQ_PID=""
LOAD_PID=""
bench_cleanup_extra() {
  [[ -n "$LOAD_PID" ]] && kill "$LOAD_PID" 2>/dev/null
  if [[ -n "$MOSQ_PID" ]] && kill -0 "$MOSQ_PID" 2>/dev/null; then
    kill "$MOSQ_PID" 2>/dev/null
    wait "$MOSQ_PID" 2>/dev/null
  fi
  return 0
}
bench_traps gateway.sh

# ---- the server
DATA="$WORK/data"
MQTT_PORT="$(free_port)"
serve_flags=(--mqtt-listen "127.0.0.1:$MQTT_PORT")
[[ "$BACKEND" == mosquitto ]] && serve_flags+=(--mqtt-backend "$MOSQUITTO_BACKEND")
echo "==> palisade serve (SQLite, gateway 127.0.0.1:$MQTT_PORT, broker: $BACKEND)"
serve_palisade "$DATA" 60 "${serve_flags[@]}"
for _ in $(seq 1 50); do
  [[ -s "$DATA/mqtt-ca.pem" ]] && break
  sleep 0.1
done
[[ -s "$DATA/mqtt-ca.pem" ]] || fail "the gateway wrote no $DATA/mqtt-ca.pem"
echo "    server pid $SERVER_PID, $ENDPOINT"

# ---- the fleet
echo "==> mqtt-setup: $DEVICES device certificates in $FLEET_DIR"
"$LOADGEN_BIN" mqtt-setup --endpoint "$ENDPOINT" --access-key "$AKID" --secret "$SECRET" \
  --devices "$DEVICES" --out "$FLEET_DIR"

# The import leaves the server's allocator holding memory it returns only slowly, which
# would hide the held connections' share: the measured server is a fresh process on the
# same database.
echo "==> restarting palisade serve (a fresh process for the memory figures)"
stop_server
serve_palisade "$DATA" 60 "${serve_flags[@]}"
echo "    server pid $SERVER_PID, $ENDPOINT"

# ---- the second Mosquitto, TLS, with the device CA
MOSQ_PORT="$(free_port)"
cat >"$WORK/mosquitto-tls.conf" <<EOF
# bench/gateway.sh: Mosquitto's own TLS listener, the reference of the publish steps.
user root
per_listener_settings false
allow_anonymous true
persistence false
log_dest file $WORK/mosquitto-tls.log
log_type error
log_type warning
listener $MOSQ_PORT 127.0.0.1
cafile $FLEET_DIR/ca.crt
certfile $FLEET_DIR/mosquitto-server.crt
keyfile $FLEET_DIR/mosquitto-server.key
require_certificate true
EOF
echo "==> TLS Mosquitto on 127.0.0.1:$MOSQ_PORT ($MOSQUITTO_BIN)"
"$MOSQUITTO_BIN" -c "$WORK/mosquitto-tls.conf" >"$WORK/mosquitto-tls.out" 2>&1 &
MOSQ_PID=$!
for _ in $(seq 1 50); do
  port_open "127.0.0.1:$MOSQ_PORT" && break
  kill -0 "$MOSQ_PID" 2>/dev/null || { cat "$WORK/mosquitto-tls.out" >&2; fail "the TLS Mosquitto exited"; }
  sleep 0.1
done
port_open "127.0.0.1:$MOSQ_PORT" || fail "the TLS Mosquitto is not listening on $MOSQ_PORT"

GW=(--host "127.0.0.1:$MQTT_PORT" --ca-file "$DATA/mqtt-ca.pem" --devices-dir "$FLEET_DIR" --json)
MQ=(--host "127.0.0.1:$MOSQ_PORT" --ca-file "$FLEET_DIR/ca.crt" --devices-dir "$FLEET_DIR" --json)

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
# CPU time of the server so far (user + system), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
TICKS="$(getconf CLK_TCK)"
# The machine's Mosquitto (the backend; the oldest mosquitto process), for context: with
# BACKEND=mosquitto the broker's share of a connection is not in the server's figure.
BROKER_PID=""
[[ "$BACKEND" == mosquitto ]] && BROKER_PID="$(pgrep -o -x mosquitto || true)"
broker_rss_kib() {
  if [[ -n "$BROKER_PID" && -r "/proc/$BROKER_PID/status" ]]; then
    awk '/^VmRSS:/ {print $2}' "/proc/$BROKER_PID/status"
  else
    echo 0
  fi
}
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status"; }
jget() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); [v:=v[k] for k in sys.argv[2:]]; print(v)' "$@"; }

# ---- a. hold
if has hold; then
  echo "==> hold: $HOLD connections at $HOLD_RATE/s, held $HOLD_FOR"
  sleep 2
  RSS_BEFORE="$(rss_kib)"
  BROKER_BEFORE="$(broker_rss_kib)"
  rm -f "$WORK/held"
  "$LOADGEN_BIN" mqtt hold "${GW[@]}" --client-prefix bench-hold --connections "$HOLD" \
    --rate "$HOLD_RATE" --hold "$HOLD_FOR" --ready-file "$WORK/held" --allow-errors \
    >"$RESULTS_DIR/hold.json" &
  LOAD_PID=$!
  while [[ ! -s "$WORK/held" ]]; do
    kill -0 "$LOAD_PID" 2>/dev/null || { wait "$LOAD_PID" || true; fail "the hold run ended before holding"; }
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server died during the hold run"
    sleep 0.2
  done
  # Let the connection records and the broker settle, then take the held figure.
  sleep 2
  RSS_HELD="$(rss_kib)"
  HWM_HELD="$(hwm_kib)"
  BROKER_HELD="$(broker_rss_kib)"
  wait "$LOAD_PID" || fail "the hold run failed"
  LOAD_PID=""
  HELD_N="$(jget "$RESULTS_DIR/hold.json" openAtEnd)"
  echo "    server VmRSS before $RSS_BEFORE KiB, while $HELD_N held $RSS_HELD KiB (VmHWM $HWM_HELD KiB)"
  python3 - "$RESULTS_DIR/hold.json" "$RSS_BEFORE" "$RSS_HELD" "$HWM_HELD" "$BROKER_BEFORE" "$BROKER_HELD" <<'PY'
import json, sys
p = sys.argv[1]
v = json.load(open(p))
before, held, hwm, bbefore, bheld = (int(x) for x in sys.argv[2:7])
v["serverRssBeforeKiB"], v["serverRssHeldKiB"], v["serverHwmKiB"] = before, held, hwm
n = v["openAtEnd"]
v["serverKiBPerHeld"] = (held - before) / n if n else None
v["backendBrokerKiBPerHeld"] = (bheld - bbefore) / n if n and bheld else None
json.dump(v, open(p, "w"))
PY
  sleep 2
fi

# ---- b. connect rate
if has connect; then
  echo "==> connect rate: $CONNECT connections at ${CONNECT_RATE}/s (0: max, $CONNECT_INFLIGHT in flight)"
  CPU_BEFORE="$(cpu_ticks)"
  "$LOADGEN_BIN" mqtt hold "${GW[@]}" --client-prefix bench-rate --connections "$CONNECT" \
    --rate "$CONNECT_RATE" --max-inflight "$CONNECT_INFLIGHT" --hold 0s --allow-errors \
    >"$RESULTS_DIR/connect.json"
  CPU_AFTER="$(cpu_ticks)"
  # Server CPU per connection: connect and close (the close is cheap beside the handshake).
  python3 - "$RESULTS_DIR/connect.json" "$CPU_BEFORE" "$CPU_AFTER" "$TICKS" <<'PY'
import json, sys
p = sys.argv[1]
v = json.load(open(p))
before, after, hz = (int(x) for x in sys.argv[2:5])
v["serverCpuSeconds"] = (after - before) / hz
v["serverCpuUsPerConnection"] = 1e6 * (after - before) / hz / v["connected"] if v["connected"] else None
json.dump(v, open(p, "w"))
print("    server CPU %.2f s: %s us per connection (connect and close)"
      % (v["serverCpuSeconds"], "%.0f" % v["serverCpuUsPerConnection"] if v["connected"] else "-"))
PY
  sleep 2
fi

# ---- c. publish throughput, side by side
if has publish; then
  echo "==> publish, QoS 0, $PAIRS pairs, ${PAYLOAD}-byte payloads, max rate: TLS Mosquitto"
  "$LOADGEN_BIN" mqtt publish "${MQ[@]}" --client-prefix bench-mq --pairs "$PAIRS" \
    --payload "$PAYLOAD" --warmup "$WARMUP" --duration "$DURATION" >"$RESULTS_DIR/publish-mosquitto.json"
  echo "==> the same through the gateway"
  "$LOADGEN_BIN" mqtt publish "${GW[@]}" --client-prefix bench-gw --pairs "$PAIRS" \
    --payload "$PAYLOAD" --warmup "$WARMUP" --duration "$DURATION" >"$RESULTS_DIR/publish-gateway.json"
fi

# ---- d. latency at half rate
if has latency; then
  if [[ -n "${LATENCY_RATE:-}" ]]; then
    HALF="$LATENCY_RATE"
  else
    base="$(jget "$RESULTS_DIR/publish-$HALF_OF.json" messagesPerSecond)"
    HALF="$(python3 -c "print(round(float('$base') / 2))")"
  fi
  echo "==> latency at $HALF messages/s: TLS Mosquitto"
  "$LOADGEN_BIN" mqtt publish "${MQ[@]}" --client-prefix bench-mq --pairs "$PAIRS" --rate "$HALF" \
    --payload "$PAYLOAD" --warmup "$WARMUP" --duration "$DURATION" >"$RESULTS_DIR/latency-mosquitto.json"
  echo "==> the same through the gateway"
  if [[ -n "${PERF_OUT:-}" ]]; then
    (sleep 3; perf record -F 499 -g -p "$SERVER_PID" -o "$PERF_OUT" -- sleep 5 >/dev/null 2>&1) &
  fi
  "$LOADGEN_BIN" mqtt publish "${GW[@]}" --client-prefix bench-gw --pairs "$PAIRS" --rate "$HALF" \
    --payload "$PAYLOAD" --warmup "$WARMUP" --duration "$DURATION" >"$RESULTS_DIR/latency-gateway.json"
fi

kill -0 "$SERVER_PID" 2>/dev/null || fail "the server died during the benchmark"
echo "    server VmHWM at the end: $(hwm_kib) KiB"

# ---- summary
CONNECT_RATE="$CONNECT_RATE" CONNECT_RATE_SHOWN="$([[ "$CONNECT_RATE" == 0 ]] && echo "a burst of $CONNECT_INFLIGHT" || echo "${CONNECT_RATE}/s")" \
  python3 - "$RESULTS_DIR" "$BACKEND" "$HALF_OF" <<'PY'
import json, os, sys
d, backend, half_of = sys.argv[1:4]
def load(name):
    p = os.path.join(d, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
rows = []
def verdict(ok):
    return "met" if ok else "NOT met"
h = load("hold")
if h:
    per = h["serverKiBPerHeld"]
    ok = h["openAtEnd"] >= 10000 and per is not None and per < 50
    v = verdict(ok) if h["attempted"] >= 10000 else "n/a: HOLD < 10,000"
    rows.append(("held connections (%s broker)" % backend,
                 "%d of %d held; VmRSS %d -> %d KiB: %s KiB per held connection%s; connect p50/p99 %.1f/%.1f ms"
                 % (h["openAtEnd"], h["attempted"], h["serverRssBeforeKiB"], h["serverRssHeldKiB"],
                    "%.1f" % per if per is not None else "-",
                    " (the backend Mosquitto: %.1f more)" % h["backendBrokerKiBPerHeld"]
                    if h.get("backendBrokerKiBPerHeld") is not None else "",
                    h["connectMs"]["p50"], h["connectMs"]["p99"]),
                 "10,000, < 50 KiB each", v))
c = load("connect")
if c:
    ok = c["connectsPerSecond"] >= 1000 and c["connected"] == c["attempted"]
    offered = float(os.environ.get("CONNECT_RATE", "0"))
    small = c["attempted"] < 1000 or 0 < offered < 1000
    v = verdict(ok) if not small else "n/a: fewer than 1,000 offered, or under 1,000/s"
    rows.append(("new TLS connections/s",
                 "%.0f/s (%d of %d in %.2f s, offered %s); connect p50/p99 %.1f/%.1f ms, TLS p50/p99 %.1f/%.1f ms; server CPU %s us per connection"
                 % (c["connectsPerSecond"], c["connected"], c["attempted"], c["connectPhaseSeconds"],
                    os.environ.get("CONNECT_RATE_SHOWN", "?"),
                    c["connectMs"]["p50"], c["connectMs"]["p99"], c["tlsMs"]["p50"], c["tlsMs"]["p99"],
                    "%.0f" % c["serverCpuUsPerConnection"] if c.get("serverCpuUsPerConnection") else "-"),
                 ">= 1,000/s", v))
pm, pg = load("publish-mosquitto"), load("publish-gateway")
if pm and pg:
    ratio = pg["messagesPerSecond"] / pm["messagesPerSecond"] if pm["messagesPerSecond"] else 0
    rows.append(("QoS 0 publish, max rate",
                 "gateway %.0f msg/s, TLS Mosquitto %.0f msg/s: ratio %.3f (p99 %.2f / %.2f ms)"
                 % (pg["messagesPerSecond"], pm["messagesPerSecond"], ratio,
                    pg["latencyMs"]["p99"], pm["latencyMs"]["p99"]),
                 ">= 0.5", verdict(ratio >= 0.5)))
lm, lg = load("latency-mosquitto"), load("latency-gateway")
if lm and lg:
    added = lg["latencyMs"]["p99"] - lm["latencyMs"]["p99"]
    rows.append(("p99 added latency at %.0f msg/s (half of %s)" % (lg["targetRate"], half_of),
                 "gateway p50/p99 %.2f/%.2f ms (%.0f msg/s), TLS Mosquitto %.2f/%.2f ms (%.0f msg/s): added p99 %.2f ms"
                 % (lg["latencyMs"]["p50"], lg["latencyMs"]["p99"], lg["messagesPerSecond"],
                    lm["latencyMs"]["p50"], lm["latencyMs"]["p99"], lm["messagesPerSecond"], added),
                 "< 5 ms", verdict(added < 5)))
print()
print("| measure | figure | target | |")
print("|---|---|---|---|")
for r in rows:
    print("| %s | %s | %s | %s |" % r)
PY
echo "(JSON results: $RESULTS_DIR)"
