#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs a local two-region
# deployment on real nats-servers (iad leads COVENANT_COUNTRIES, ams follows),
# publishes events in iad and shows them arriving in ams with the lag table
# falling to zero. Stops everything it started on exit.
#   scripts/demo.sh [--events N] [--rate MSGS_PER_S]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EVENTS=5000
RATE=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    *) echo "usage: $0 [--events N] [--rate MSGS_PER_S]" >&2; exit 2 ;;
  esac
done

./scripts/install-deps.sh
BUILD=${BUILD_DIR:-build}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=debugoptimized >/dev/null
echo "== building"
ninja -C "$BUILD" daemon/isthmusd ctl/isthmusctl tests/tools/loadgen/isthmus-loadgen >/dev/null

NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
ISTHMUSD=$ROOT/$BUILD/daemon/isthmusd
CTL=$ROOT/$BUILD/ctl/isthmusctl
LOADGEN=$ROOT/$BUILD/tests/tools/loadgen/isthmus-loadgen
DEMO=$(mktemp -d /tmp/isthmus-demo.XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "== stopped everything; logs were in $DEMO"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for $what" >&2; exit 1; fi
    sleep 0.1
  done
}

declare -A NATS_PORT LINK_PORT HTTP_PORT
for r in iad ams; do
  NATS_PORT[$r]=$(free_port); LINK_PORT[$r]=$(free_port); HTTP_PORT[$r]=$(free_port)
done

for r in iad ams; do
  mkdir -p "$DEMO/$r"
  cat > "$DEMO/$r/nats.conf" <<CONF
server_name: $r
listen: 127.0.0.1:${NATS_PORT[$r]}
jetstream { store_dir: "$DEMO/$r/js" }
CONF
  "$NATS_SERVER" -c "$DEMO/$r/nats.conf" >"$DEMO/$r/nats.log" 2>&1 &
  PIDS+=($!)
done

# Links are mutual TLS: a demo CA and one certificate per region (DNS SAN =
# region name), made with the openssl CLI (installed by install-deps.sh).
mkdir -p "$DEMO/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=isthmus demo CA" -keyout "$DEMO/tls/ca.key" -out "$DEMO/tls/ca.pem" 2>/dev/null
for r in iad ams; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$r" \
    -keyout "$DEMO/tls/$r.key" -out "$DEMO/tls/$r.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$r" > "$DEMO/tls/$r.ext"
  openssl x509 -req -in "$DEMO/tls/$r.csr" -CA "$DEMO/tls/ca.pem" -CAkey "$DEMO/tls/ca.key" \
    -CAcreateserial -days 30 -extfile "$DEMO/tls/$r.ext" -out "$DEMO/tls/$r.crt" 2>/dev/null
done

for r in iad ams; do
  other=$([ $r = iad ] && echo ams || echo iad)
  cat > "$DEMO/$r/isthmus.toml" <<CONF
[region]
name = "$r"

[nats]
urls = ["nats://127.0.0.1:${NATS_PORT[$r]}"]

[link]
listen = "127.0.0.1:${LINK_PORT[$r]}"
compression = "s2"

[link.tls]
ca = "$DEMO/tls/ca.pem"
cert = "$DEMO/tls/$r.crt"
key = "$DEMO/tls/$r.key"

[[peers]]
name = "$other"
address = "127.0.0.1:${LINK_PORT[$other]}"

[http]
listen = "127.0.0.1:${HTTP_PORT[$r]}"

[[streams]]
name = "COVENANT_COUNTRIES"
leader = "iad"
CONF
  "$ISTHMUSD" --check-config "$DEMO/$r/isthmus.toml"
  "$ISTHMUSD" --config "$DEMO/$r/isthmus.toml" >"$DEMO/$r/isthmusd.log" 2>&1 &
  PIDS+=($!)
  [ $r = ams ] && AMS_DAEMON=$!
done
echo "== two regions up: iad (nats :${NATS_PORT[iad]}, api :${HTTP_PORT[iad]}), ams (nats :${NATS_PORT[ams]}, api :${HTTP_PORT[ams]})"

for r in iad ams; do wait_for 20 "nats-server $r" "$LOADGEN" ping --url "nats://127.0.0.1:${NATS_PORT[$r]}"; done
echo "== creating COVENANT_COUNTRIES in iad (limits retention, 30 days, 1,000,000 messages)"
"$LOADGEN" create-stream --url "nats://127.0.0.1:${NATS_PORT[iad]}" --json '{
  "name": "COVENANT_COUNTRIES",
  "subjects": ["covenant.countries.created", "covenant.countries.updated", "covenant.countries.deleted"],
  "retention": "limits", "max_age": 2592000000000000, "max_msgs": 1000000,
  "discard": "old", "storage": "file", "num_replicas": 1}' >/dev/null

wait_for 30 "both daemons healthy" "$CTL" --url "http://127.0.0.1:${HTTP_PORT[ams]}" health
"$CTL" --url "http://127.0.0.1:${HTTP_PORT[ams]}" health || true

echo "== publishing $EVENTS events into iad at $RATE msg/s; the lag table (ams's view) refreshes every second"
"$LOADGEN" publish --url "nats://127.0.0.1:${NATS_PORT[iad]}" --count "$EVENTS" --rate "$RATE" \
  --msg-id-every 10 >"$DEMO/publish.log" 2>&1 &
PUB=$!
PIDS+=($PUB)
while kill -0 $PUB 2>/dev/null; do
  echo "--- $(date +%T)"
  "$CTL" --url "http://127.0.0.1:${HTTP_PORT[ams]}" lag || true
  sleep 1
done
wait $PUB || { echo "publisher failed:"; cat "$DEMO/publish.log"; exit 1; }
cat "$DEMO/publish.log"

lag_zero() {  # lag_zero REGION: the follower's applied sequence equals the leader's
  "$CTL" --json --url "http://127.0.0.1:${HTTP_PORT[$1]}" lag |
    python3 -c 'import json,sys; j=json.load(sys.stdin); f=j["streams"][0]["followers"][0]; sys.exit(0 if f["seq_lag"]==0 and f["applied_seq"]>0 else 1)'
}
wait_for 60 "the lag to reach zero" lag_zero ams
echo "--- $(date +%T): caught up"
"$CTL" --url "http://127.0.0.1:${HTTP_PORT[ams]}" lag

echo
echo "== kill -9 of ams's isthmusd, then $EVENTS more events in iad: the leader sees ams fall behind"
kill -9 "$AMS_DAEMON"; wait "$AMS_DAEMON" 2>/dev/null || true
"$LOADGEN" publish --url "nats://127.0.0.1:${NATS_PORT[iad]}" --count "$EVENTS" >"$DEMO/publish2.log" 2>&1
cat "$DEMO/publish2.log"
"$CTL" --url "http://127.0.0.1:${HTTP_PORT[iad]}" lag || true
echo "== restarting ams's isthmusd: it resumes from its replica's last sequence (nothing replayed, nothing lost)"
"$ISTHMUSD" --config "$DEMO/ams/isthmus.toml" >>"$DEMO/ams/isthmusd.log" 2>&1 &
PIDS+=($!)
for i in 1 2 3 4 5 6 7 8 9 10; do
  sleep 0.5
  echo "--- $(date +%T.%N | cut -c1-12)"
  "$CTL" --url "http://127.0.0.1:${HTTP_PORT[iad]}" lag 2>/dev/null | tail -1 || true
  lag_zero iad 2>/dev/null && break
done
wait_for 60 "the lag to reach zero again" lag_zero iad
echo "--- $(date +%T): caught up again"
"$CTL" --url "http://127.0.0.1:${HTTP_PORT[ams]}" lag
echo
echo "== the leader's view (iad):"
"$CTL" --url "http://127.0.0.1:${HTTP_PORT[iad]}" lag
echo
echo "== links (iad):"
"$CTL" --url "http://127.0.0.1:${HTTP_PORT[iad]}" links
echo
echo "== stream state in each region:"
for r in iad ams; do
  printf "%s: " $r
  "$LOADGEN" info --url "nats://127.0.0.1:${NATS_PORT[$r]}" --stream COVENANT_COUNTRIES |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["state"]; print("messages=%d first_seq=%d last_seq=%d" % (s["messages"], s["first_seq"], s["last_seq"]))'
done
