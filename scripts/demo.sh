#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs a local
# three-region deployment on real nats-servers: iad leads the seed's four
# streams (COVENANT_COUNTRIES, COVENANT_PROJECTS, COVENANT_USERS with
# interest retention, ALERTS_INCIDENTS with limits/discard new), ams and syd
# follow over mutual-TLS + S2 links in a full mesh; ams is a cluster of three
# nats-servers holding R3 replicas. It publishes events into all four streams
# in iad and shows the leader's lag table (every stream x follower) while they
# replicate, then a kill -9 of syd's daemon and its resume, a kill -9 of the
# ams node ams's daemon is connected to (it moves to another node), a foreign
# write into a replica (divergence and a rebuild) and a stream added by
# SIGHUP, then removed again by SIGHUP; syd taken out of the mesh by SIGHUP and added back; a
# switchover of COVENANT_PROJECTS from iad to ams by SIGHUP. Stops everything it started on exit (Ctrl-C included), daemons
# first; removes its temporary directory unless it failed or --keep is given.
# --hold: at the end, leave the deployment running (to try isthmusctl, the
# API and the status pages against it) until Ctrl-C.
#   scripts/demo.sh [--events N] [--rate MSGS_PER_S] [--keep] [--hold]    (per stream)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EVENTS=4000
RATE=800
KEEP=0
HOLD=0
usage() { echo "usage: $0 [--events N (1..5000)] [--rate MSGS_PER_S] [--keep] [--hold]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --events) [ $# -ge 2 ] || usage; EVENTS=$2; shift 2 ;;
    --rate) [ $# -ge 2 ] || usage; RATE=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --hold) HOLD=1; shift ;;
    *) usage ;;
  esac
done
# Two rounds of EVENTS per stream; ALERTS_INCIDENTS keeps at most 10,000
# messages and refuses more (discard: new, as the seed defines it).
if ! [[ "$EVENTS" =~ ^[0-9]+$ ]] || [ "$EVENTS" -lt 1 ] || [ "$EVENTS" -gt 5000 ]; then
  echo "$0: --events must be 1..5000: the demo publishes it twice into ALERTS_INCIDENTS, which holds 10,000 messages with discard: new" >&2
  exit 2
fi
if ! [[ "$RATE" =~ ^[0-9]+$ ]]; then echo "$0: --rate must be a whole number of messages per second (0: as fast as possible)" >&2; exit 2; fi

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
REGIONS=(iad ams syd)
STREAMS=(COVENANT_COUNTRIES COVENANT_PROJECTS COVENANT_USERS ALERTS_INCIDENTS)
declare -A SUBJECTS=(
  [COVENANT_COUNTRIES]="covenant.countries.created,covenant.countries.updated,covenant.countries.deleted"
  [COVENANT_PROJECTS]="covenant.projects.created,covenant.projects.updated,covenant.projects.deleted"
  [COVENANT_USERS]="covenant.users.created,covenant.users.updated,covenant.users.deleted"
  [ALERTS_INCIDENTS]="alerts.incidents.critical,alerts.incidents.warning,alerts.incidents.info")
# The seed's stream definitions at the leader (num_replicas 1: iad is one
# nats-server here; ams's daemon makes its replicas R3, `nats.replicas = 3`).
declare -A LIMITS=(
  [COVENANT_COUNTRIES]='"retention":"interest","max_age":2592000000000000,"max_msgs":1000000,"discard":"old"'
  [COVENANT_PROJECTS]='"retention":"interest","max_age":2592000000000000,"max_msgs":1000000,"discard":"old"'
  [COVENANT_USERS]='"retention":"interest","max_age":604800000000000,"max_msgs":100000,"discard":"old"'
  [ALERTS_INCIDENTS]='"retention":"limits","max_age":86400000000000,"max_msgs":10000,"discard":"new"')
PIDS=()
declare -A DAEMON_PID NATS_PORT LINK_PORT HTTP_PORT
# nats-servers: iad and syd one each, ams three joined by routes.
AMS_NODES=(ams-a ams-b ams-c)
NODES=(iad "${AMS_NODES[@]}" syd)
declare -A NODE_PID NODE_PORT MON_PORT ROUTE_PORT

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Daemons first (SIGTERM: they drain their replica writes, then exit),
  # then publishers and nats-servers.
  for r in "${!DAEMON_PID[@]}"; do kill "${DAEMON_PID[$r]}" 2>/dev/null || true; done
  for r in "${!DAEMON_PID[@]}"; do wait "${DAEMON_PID[$r]}" 2>/dev/null || true; done
  for p in "${PIDS[@]}" "${NODE_PID[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}" "${NODE_PID[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$rc" -eq 0 ] && [ "$KEEP" -eq 0 ]; then
    rm -rf "$DEMO"
    echo "== stopped everything"
  else
    echo "== stopped everything; logs are in $DEMO"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "== interrupted"; exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for $what" >&2; exit 1; fi
    sleep 0.1
  done
}
ctl() { local r=$1; shift; "$CTL" --url "http://127.0.0.1:${HTTP_PORT[$r]}" "$@"; }
replace_in() {  # replace_in FILE OLD NEW: every OLD in FILE becomes NEW; fails when there is none
  python3 - "$@" <<'PY'
import sys
p, old, new = sys.argv[1:4]
s = open(p).read()
assert old in s, "%r is not in %s" % (old, p)
open(p, "w").write(s.replace(old, new))
PY
}

for r in "${REGIONS[@]}"; do LINK_PORT[$r]=$(free_port); HTTP_PORT[$r]=$(free_port); done
for n in "${NODES[@]}"; do NODE_PORT[$n]=$(free_port); done
for n in "${AMS_NODES[@]}"; do MON_PORT[$n]=$(free_port); ROUTE_PORT[$n]=$(free_port); done
# A region's own address for the demo's clients (any node of ams would do).
NATS_PORT[iad]=${NODE_PORT[iad]}; NATS_PORT[syd]=${NODE_PORT[syd]}; NATS_PORT[ams]=${NODE_PORT[ams-a]}

start_node() {  # start_node NODE: its configuration is written on first start
  local n=$1
  mkdir -p "$DEMO/$n"
  if [ ! -f "$DEMO/$n/nats.conf" ]; then
    printf 'server_name: %s\nlisten: 127.0.0.1:%s\njetstream { store_dir: "%s" }\n' \
      "$n" "${NODE_PORT[$n]}" "$DEMO/$n/js" > "$DEMO/$n/nats.conf"
    if [ -n "${ROUTE_PORT[$n]:-}" ]; then
      local routes="" m
      for m in "${AMS_NODES[@]}"; do
        [ "$m" = "$n" ] || routes+="${routes:+, }nats-route://127.0.0.1:${ROUTE_PORT[$m]}"
      done
      printf 'http: 127.0.0.1:%s\ncluster {\n  name: ams\n  listen: 127.0.0.1:%s\n  routes: [%s]\n}\n' \
        "${MON_PORT[$n]}" "${ROUTE_PORT[$n]}" "$routes" >> "$DEMO/$n/nats.conf"
    fi
  fi
  # Servers and daemons run in sessions of their own: a Ctrl-C in the
  # terminal reaches only this script, whose cleanup stops them in order.
  setsid "$NATS_SERVER" -c "$DEMO/$n/nats.conf" >>"$DEMO/$n/nats.log" 2>&1 &
  NODE_PID[$n]=$!
}
# An ams node is ready once its JetStream is (the cluster has a meta leader).
node_ready() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:${MON_PORT[$1]}/healthz?js-server-only=true"
}
for n in "${NODES[@]}"; do start_node "$n"; done

# Links are mutual TLS: a demo CA and one certificate per region (DNS SAN =
# region name), made with the openssl CLI (installed by install-deps.sh).
mkdir -p "$DEMO/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=isthmus demo CA" -keyout "$DEMO/tls/ca.key" -out "$DEMO/tls/ca.pem" 2>/dev/null
for r in "${REGIONS[@]}"; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$r" \
    -keyout "$DEMO/tls/$r.key" -out "$DEMO/tls/$r.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$r" > "$DEMO/tls/$r.ext"
  openssl x509 -req -in "$DEMO/tls/$r.csr" -CA "$DEMO/tls/ca.pem" -CAkey "$DEMO/tls/ca.key" \
    -CAcreateserial -days 30 -extfile "$DEMO/tls/$r.ext" -out "$DEMO/tls/$r.crt" 2>/dev/null
done

start_daemon() {  # start_daemon REGION
  setsid "$ISTHMUSD" --config "$DEMO/$1/isthmus.toml" >>"$DEMO/$1/isthmusd.log" 2>&1 &
  DAEMON_PID[$1]=$!
}

for r in "${REGIONS[@]}"; do
  mkdir -p "$DEMO/$r"
  {
    cat <<CONF
[region]
name = "$r"

[nats]
$(if [ "$r" = ams ]; then
    printf 'urls = ["nats://127.0.0.1:%s", "nats://127.0.0.1:%s", "nats://127.0.0.1:%s"]\nreplicas = 3' \
      "${NODE_PORT[ams-a]}" "${NODE_PORT[ams-b]}" "${NODE_PORT[ams-c]}"
  else
    printf 'urls = ["nats://127.0.0.1:%s"]' "${NATS_PORT[$r]}"
  fi)

[link]
listen = "127.0.0.1:${LINK_PORT[$r]}"
compression = "s2"

[link.tls]
ca = "$DEMO/tls/ca.pem"
cert = "$DEMO/tls/$r.crt"
key = "$DEMO/tls/$r.key"

[http]
listen = "127.0.0.1:${HTTP_PORT[$r]}"
CONF
    for p in "${REGIONS[@]}"; do
      [ "$p" = "$r" ] && continue
      printf '\n[[peers]]\nname = "%s"\naddress = "127.0.0.1:%s"\n' "$p" "${LINK_PORT[$p]}"
    done
    for s in "${STREAMS[@]}"; do printf '\n[[streams]]\nname = "%s"\nleader = "iad"\n' "$s"; done
  } > "$DEMO/$r/isthmus.toml"
  "$ISTHMUSD" --check-config "$DEMO/$r/isthmus.toml"
done

for n in "${NODES[@]}"; do wait_for 20 "nats-server $n" "$LOADGEN" ping --url "nats://127.0.0.1:${NODE_PORT[$n]}"; done
for n in "${AMS_NODES[@]}"; do wait_for 30 "$n's JetStream (ams's cluster)" node_ready "$n"; done
echo "== creating the seed's four streams in iad; an application consumer (ANALYTICS) that has not"
echo "   consumed yet holds the interest-retention streams' messages at the leader"
for s in "${STREAMS[@]}"; do
  subj=$(echo "${SUBJECTS[$s]}" | sed 's/\([^,]*\)/"\1"/g')
  "$LOADGEN" create-stream --url "nats://127.0.0.1:${NATS_PORT[iad]}" \
    --json "{\"name\":\"$s\",\"subjects\":[$subj],${LIMITS[$s]},\"storage\":\"file\",\"num_replicas\":1}" >/dev/null
  case "${LIMITS[$s]}" in
    *interest*)
      "$LOADGEN" api --url "nats://127.0.0.1:${NATS_PORT[iad]}" \
        --subject "\$JS.API.CONSUMER.DURABLE.CREATE.$s.ANALYTICS" \
        --json "{\"stream_name\":\"$s\",\"config\":{\"durable_name\":\"ANALYTICS\",\"ack_policy\":\"explicit\"}}" >/dev/null ;;
  esac
done

# The daemons start once the leader's streams exist (started before, they
# would find them a moment later and say so in their logs).
for r in "${REGIONS[@]}"; do start_daemon "$r"; done
echo "== three regions up (full mesh of TLS+S2 links):"
for r in "${REGIONS[@]}"; do
  nats=":${NATS_PORT[$r]}"
  [ "$r" = ams ] && nats=":${NODE_PORT[ams-a]} :${NODE_PORT[ams-b]} :${NODE_PORT[ams-c]} (a cluster of three)"
  echo "   $r: nats $nats, api and status page http://127.0.0.1:${HTTP_PORT[$r]}/, config $DEMO/$r/isthmus.toml"
done
for r in "${REGIONS[@]}"; do wait_for 30 "$r healthy" ctl "$r" health; done
echo "-- isthmusctl health at ams (healthy while its streams start: their R3 replicas are being created)"
ctl ams health || true

PUB_STREAMS=("${STREAMS[@]}")
publish_all() {  # publish_all COUNT RATE LOGSUFFIX [ARGS]: one publisher per stream of PUB_STREAMS, in the background
  PUBS=()
  for s in "${PUB_STREAMS[@]}"; do
    "$LOADGEN" publish --url "nats://127.0.0.1:${NATS_PORT[iad]}" --subjects "${SUBJECTS[$s]}" \
      --count "$1" --rate "$2" "${@:4}" >"$DEMO/publish-$s-$3.log" 2>&1 &
    PUBS+=($!)
    PIDS+=($!)
  done
}
publishers_running() { for p in "${PUBS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
publishers_ok() {
  local rc=0
  for i in "${!PUBS[@]}"; do
    wait "${PUBS[$i]}" || { echo "publisher for ${PUB_STREAMS[$i]} failed:"; cat "$DEMO/publish-${PUB_STREAMS[$i]}-$1.log"; rc=1; }
  done
  return $rc
}
caught_up() {  # every follower of every stream at the leader's last sequence (iad's view)
  ctl iad --json lag | python3 -c '
import json, sys
j = json.load(sys.stdin)
ok = all(f["seq_lag"] == 0 and f["applied_seq"] > 0 and f["state"] == "replicating"
         for s in j["streams"] for f in s.get("followers", []))
n = sum(len(s.get("followers", [])) for s in j["streams"])
sys.exit(0 if ok and n == 8 else 1)'
}

all_subscribed() {  # every follower of every stream reading from iad (its replica made)
  ctl iad --json lag | python3 -c '
import json, sys
j = json.load(sys.stdin)
f = [f for s in j["streams"] for f in s.get("followers", [])]
sys.exit(0 if len(f) == 8 and all(x["state"] in ("syncing", "replicating") for x in f) else 1)'
}
# (ams's R3 replicas take a few seconds each to create; messages published
# meanwhile would wait for them, and their lag would count.)
wait_for 60 "every follower to subscribe" all_subscribed

echo "== publishing $EVENTS events into each stream in iad at $RATE msg/s each;"
echo "   the leader's lag table (iad: every stream x follower) refreshes every second"
# Every 10th event carries a Nats-Msg-Id: it travels as Isthmus-Orig-Nats-Msg-Id.
publish_all "$EVENTS" "$RATE" 1 --msg-id-every 10
while publishers_running; do
  echo "--- $(date +%T)"
  ctl iad lag || true
  sleep 1
done
publishers_ok 1 || exit 1
cat "$DEMO"/publish-*-1.log
wait_for 60 "every follower to catch up" caught_up
echo "--- $(date +%T): caught up"
ctl iad lag

echo
echo "== kill -9 of syd's isthmusd, then $EVENTS more events per stream as fast as iad takes them:"
echo "   iad sees syd fall behind while ams follows"
kill -9 "${DAEMON_PID[syd]}"; wait "${DAEMON_PID[syd]}" 2>/dev/null || true
unset 'DAEMON_PID[syd]'
publish_all "$EVENTS" 0 2
publishers_ok 2 || exit 1
ctl iad lag || true
echo "== restarting syd's isthmusd: it resumes from its replicas' last sequences (nothing replayed, nothing lost)"
start_daemon syd
for i in $(seq 1 20); do
  sleep 0.5
  echo "--- $(date +%T.%N | cut -c1-12)"
  ctl iad lag 2>/dev/null | grep -E "STREAM|syd" || true
  caught_up 2>/dev/null && break
done
wait_for 60 "syd to catch up again" caught_up
echo "--- $(date +%T): caught up again"
ctl iad lag
echo
echo "== a follower's view (syd):"
ctl syd lag
echo
echo "== links (iad):"
ctl iad links
echo
echo "== ams is a cluster of three nats-servers (${AMS_NODES[*]}) and its replicas are R3."
echo "   kill -9 of the node ams's daemon is connected to, while 1000 more events per COVENANT stream"
echo "   arrive in iad: the daemon connects to another node at once (it lists all three in nats.urls);"
echo "   the replicas the node led elect new leaders among the two left (nats-server takes several"
echo "   seconds, the lag rises meanwhile); the killed node catches up when it returns"
ams_node() {  # the ams node ams's daemon last connected to (its log says which)
  local port m
  port=$(grep -h "nats: connected to" "$DEMO/ams/isthmusd.log" | tail -1 | sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p')
  for m in "${AMS_NODES[@]}"; do if [ "${NODE_PORT[$m]}" = "$port" ]; then echo "$m"; fi; done
}
replica_state() {  # replica_state STREAM VIA_NODE: "R3, leader X, replicas Y (current), Z (current)"
  "$LOADGEN" info --url "nats://127.0.0.1:${NODE_PORT[$2]}" --stream "$1" | python3 -c '
import json, sys
j = json.load(sys.stdin); c = j.get("cluster", {})
reps = ", ".join("%s (%s)" % (r["name"], "current" if r.get("current") else "behind") for r in c.get("replicas", []))
print("R%d, leader %s, replicas %s, last_seq %d" % (j["config"]["num_replicas"], c.get("leader", "none"), reps or "none",
                                              j["state"]["last_seq"]))'
}
all_current() {  # every replica at ams has a leader and two current replicas
  local s
  for s in "${STREAMS[@]}"; do
    replica_state "$s" "$1" | grep -q "leader ams-.*replicas ams-. (current), ams-. (current)" || return 1
  done
}
VICTIM=$(ams_node)
[ -n "$VICTIM" ] || { echo "cannot tell which node ams's daemon is connected to" >&2; exit 1; }
SURVIVOR=$(for m in "${AMS_NODES[@]}"; do if [ "$m" != "$VICTIM" ]; then echo "$m"; fi; done | head -1)
echo "-- ams's daemon is connected to $VICTIM; the replicas at ams:"
for s in COVENANT_COUNTRIES COVENANT_PROJECTS COVENANT_USERS; do
  printf "   %-18s %s\n" "$s" "$(replica_state "$s" "$SURVIVOR")"
done
kill -9 "${NODE_PID[$VICTIM]}"; wait "${NODE_PID[$VICTIM]}" 2>/dev/null || true
unset "NODE_PID[$VICTIM]"
echo "-- $(date +%T): $VICTIM killed. Every second: iad's rows for ams, and ams's /healthz (503 while"
echo "   a replica has no leader: the daemon's requests for it time out; alert on it with a delay)"
PUB_STREAMS=(COVENANT_COUNTRIES COVENANT_PROJECTS COVENANT_USERS)
publish_all 1000 500 3
deadline=$((SECONDS + 60))
until ! publishers_running && caught_up 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || { echo "timed out waiting for ams to catch up on the two nodes left" >&2; exit 1; }
  sleep 1
  echo "--- $(date +%T)"
  ctl iad lag 2>/dev/null | grep -E "STREAM|ams" || true
  ctl ams health 2>/dev/null | grep -E "^status|^  - " | cut -c1-150 | sed 's/^/   ams health: /' || true
done
publishers_ok 3 || exit 1
PUB_STREAMS=("${STREAMS[@]}")
echo "--- $(date +%T): caught up; ams's daemon is now connected to $(ams_node). Its log:"
grep -h "nats:" "$DEMO/ams/isthmusd.log" | sed 's/^/   /'
ctl iad lag | grep -E "STREAM|ams"
for s in COVENANT_COUNTRIES COVENANT_PROJECTS COVENANT_USERS; do
  printf "   %-18s %s\n" "$s" "$(replica_state "$s" "$SURVIVOR")"
done
echo "-- restarting $VICTIM"
start_node "$VICTIM"
wait_for 40 "$VICTIM back in ams's cluster" node_ready "$VICTIM"
wait_for 60 "every R3 replica at ams current on all three nodes" all_current "$SURVIVOR"
echo "-- $VICTIM is back, every replica current on all three nodes:"
for s in COVENANT_COUNTRIES COVENANT_PROJECTS COVENANT_USERS ALERTS_INCIDENTS; do
  printf "   %-18s %s\n" "$s" "$(replica_state "$s" "$SURVIVOR")"
done

echo
echo "== an application in ams publishes into its replica of COVENANT_COUNTRIES (a foreign write):"
echo "   ams stops that stream (diverged), keeps the message aside, and an operator rebuilds the replica"
"$LOADGEN" publish --url "nats://127.0.0.1:${NATS_PORT[ams]}" --subjects covenant.countries.updated \
  --count 1 --rate 0 >"$DEMO/publish-foreign.log" 2>&1
kept_aside() {  # diverged, with the foreign message kept aside
  ctl ams --json lag | python3 -c '
import json, sys
s = [s for s in json.load(sys.stdin)["streams"] if s["stream"] == "COVENANT_COUNTRIES"][0]
sys.exit(0 if s["state"] == "diverged" and s["followers"][0].get("foreign_kept", 0) >= 1 else 1)'
}
wait_for 20 "ams to report the divergence" kept_aside
ctl ams health || true
printf "%s" "-- the side stream in ams: "
"$LOADGEN" info --url "nats://127.0.0.1:${NATS_PORT[ams]}" --stream ISTHMUS_FOREIGN_COVENANT_COUNTRIES |
  python3 -c 'import json,sys; j=json.load(sys.stdin); print("ISTHMUS_FOREIGN_COVENANT_COUNTRIES messages=%d subjects=%s" % (j["state"]["messages"], j["config"]["subjects"]))'
echo "-- isthmusctl rebuild COVENANT_COUNTRIES --watch (at ams)"
ctl ams rebuild COVENANT_COUNTRIES --watch --interval 500ms
wait_for 30 "ams healthy again" ctl ams health
ctl ams lag | grep -E "STREAM|COUNTRIES"

echo
echo "== a fifth stream, COVENANT_AUDIT, created in iad with 500 events of history, then added to"
echo "   every region's configuration and applied with SIGHUP (systemctl reload): no restart;"
echo "   the leader first, so that no follower asks iad for a stream it does not lead yet"
"$LOADGEN" create-stream --url "nats://127.0.0.1:${NATS_PORT[iad]}" \
  --json '{"name":"COVENANT_AUDIT","subjects":["covenant.audit.>"],"storage":"file","num_replicas":1}' >/dev/null
"$LOADGEN" publish --url "nats://127.0.0.1:${NATS_PORT[iad]}" --subjects covenant.audit.logged \
  --count 500 --rate 0 >"$DEMO/publish-audit.log" 2>&1
for r in "${REGIONS[@]}"; do
  printf '\n[[streams]]\nname = "COVENANT_AUDIT"\nleader = "iad"\n' >> "$DEMO/$r/isthmus.toml"
  kill -HUP "${DAEMON_PID[$r]}"
  # (REGIONS starts with iad: the followers once it has applied it.)
  [ "$r" != iad ] || wait_for 10 "iad to apply the reload" grep -q "reloaded: .*COVENANT_AUDIT" "$DEMO/iad/isthmusd.log"
done
audit_replicated() {  # both followers of COVENANT_AUDIT hold all 500
  ctl iad --json lag | python3 -c '
import json, sys
s = [s for s in json.load(sys.stdin)["streams"] if s["stream"] == "COVENANT_AUDIT"]
ok = s and len(s[0].get("followers", [])) == 2 and all(
    f["state"] == "replicating" and f["seq_lag"] == 0 and f["applied_seq"] == 500 for f in s[0]["followers"])
sys.exit(0 if ok else 1)'
}
wait_for 30 "COVENANT_AUDIT to reach ams and syd" audit_replicated
for r in "${REGIONS[@]}"; do
  printf "%s: " "$r"; grep -h "reloaded:" "$DEMO/$r/isthmusd.log" | tail -1
done
ctl iad lag | grep -E "STREAM|AUDIT"

echo
echo "== COVENANT_AUDIT removed again from every region's configuration, with SIGHUP: the followers"
echo "   first (iad's rows for them read 'stopped'), then iad, which deletes its readers of it;"
echo "   nothing is deleted from the streams: every replica keeps its 500 messages"
drop_audit() {  # removes the [[streams]] table added above
  replace_in "$1" $'\n[[streams]]\nname = "COVENANT_AUDIT"\nleader = "iad"\n' ""
}
for r in ams syd iad; do
  drop_audit "$DEMO/$r/isthmus.toml"
  kill -HUP "${DAEMON_PID[$r]}"
  wait_for 10 "$r to apply the reload" grep -q "reloaded: .*COVENANT_AUDIT removed" "$DEMO/$r/isthmusd.log"
  if [ "$r" = syd ]; then
    audit_stopped() {  # iad's rows for both followers read stopped
      ctl iad --json lag | python3 -c '
import json, sys
s = [s for s in json.load(sys.stdin)["streams"] if s["stream"] == "COVENANT_AUDIT"]
sys.exit(0 if s and all(f["state"] == "stopped" for f in s[0].get("followers", [])) else 1)'
    }
    wait_for 10 "iad to see both followers stop COVENANT_AUDIT" audit_stopped
    ctl iad lag | grep -E "STREAM|AUDIT"
  fi
done
for r in ams syd iad; do  # (in the order they were reloaded)
  printf "%s: " "$r"; grep -h "reloaded:" "$DEMO/$r/isthmusd.log" | tail -1
  grep -h "COVENANT_AUDIT: removed by reload" "$DEMO/$r/isthmusd.log" | sed 's/^/     /'
done
if ctl iad lag | grep -q COVENANT_AUDIT; then echo "iad still lists COVENANT_AUDIT" >&2; exit 1; fi
echo "iad's lag table no longer lists COVENANT_AUDIT; health: iad $(ctl iad health | awk 'NR==1{print $2}'), ams $(ctl ams health | awk 'NR==1{print $2}'), syd $(ctl syd health | awk 'NR==1{print $2}')"

echo
echo "== syd taken out of the mesh with SIGHUP (its [[peers]] table removed at iad and ams): the links"
echo "   to it close (peer_removed) and iad deletes the durable readers it kept for syd; 200 events per"
echo "   COVENANT stream arrive meanwhile (ANALYTICS still holds them at iad); then syd is added back with SIGHUP"
echo "   and catches up from its replicas' last sequences"
syd_peer() { printf '\n[[peers]]\nname = "syd"\naddress = "127.0.0.1:%s"\n' "${LINK_PORT[syd]}"; }
for r in iad ams; do
  replace_in "$DEMO/$r/isthmus.toml" "$(syd_peer)"$'\n' ""
  kill -HUP "${DAEMON_PID[$r]}"
  wait_for 10 "$r to apply the reload" grep -q "reloaded: .*name syd removed" "$DEMO/$r/isthmusd.log"
done
syd_gone() { ! ctl iad links | grep -q syd && [ "$(ctl syd --json links | python3 -c '
import json, sys
print(sum(1 for l in json.load(sys.stdin)["links"] if l["state"] == "up"))')" = 0 ]; }
wait_for 10 "syd's links to close" syd_gone
for r in iad ams; do printf "%s: " "$r"; grep -h "reloaded:" "$DEMO/$r/isthmusd.log" | tail -1; done
grep -h "of region syd, which is no longer a peer" "$DEMO/iad/isthmusd.log" | sed 's/^/iad: /'
echo "-- syd's own view of its link to iad (it still lists iad):"
ctl syd links | grep -E "PEER|iad" || true
PUB_STREAMS=(COVENANT_COUNTRIES COVENANT_PROJECTS COVENANT_USERS)  # (ALERTS_INCIDENTS may be full: discard new)
publish_all 200 0 5
publishers_ok 5 || exit 1
PUB_STREAMS=("${STREAMS[@]}")
ctl iad lag
for r in iad ams; do
  syd_peer >> "$DEMO/$r/isthmus.toml"
  kill -HUP "${DAEMON_PID[$r]}"
  wait_for 10 "$r to apply the reload" grep -q "reloaded: .*name syd added" "$DEMO/$r/isthmusd.log"
done
wait_for 60 "syd to catch up after it was added back" caught_up
echo "--- $(date +%T): syd added back and caught up; health: iad $(ctl iad health | awk 'NR==1{print $2}'), ams $(ctl ams health | awk 'NR==1{print $2}'), syd $(ctl syd health | awk 'NR==1{print $2}')"
ctl iad lag

echo
echo "== switchover: COVENANT_PROJECTS moves from iad to ams with SIGHUP (its leader changed in every"
echo "   region's configuration; iad first, then ams, then syd): iad becomes a follower (its durable"
echo "   readers go once its replica is ready), syd follows ams; then 200 events are published in ams"
for r in iad ams syd; do
  replace_in "$DEMO/$r/isthmus.toml" $'name = "COVENANT_PROJECTS"\nleader = "iad"\n' \
    $'name = "COVENANT_PROJECTS"\nleader = "ams"\n'
  kill -HUP "${DAEMON_PID[$r]}"
  wait_for 10 "$r to apply the reload" grep -q "reloaded: .*leader" "$DEMO/$r/isthmusd.log"
done
for r in iad ams syd; do grep -h "COVENANT_PROJECTS: leader changed by reload" "$DEMO/$r/isthmusd.log" | sed "s/^/$r: /"; done
"$LOADGEN" publish --url "nats://127.0.0.1:${NATS_PORT[ams]}" --subjects "${SUBJECTS[COVENANT_PROJECTS]}" \
  --count 200 --rate 0 >"$DEMO/publish-projects-ams.log" 2>&1
projects_from_ams() {  # ams leads COVENANT_PROJECTS and iad and syd hold its last sequence
  ctl ams --json lag | python3 -c '
import json, sys
s = [s for s in json.load(sys.stdin)["streams"] if s["stream"] == "COVENANT_PROJECTS"]
ok = s and s[0]["role"] == "leader" and len(s[0].get("followers", [])) == 2 and all(
    f["state"] == "replicating" and f["seq_lag"] == 0 for f in s[0]["followers"])
sys.exit(0 if ok else 1)'
}
wait_for 60 "iad and syd to follow COVENANT_PROJECTS from ams" projects_from_ams
echo "-- ams's lag table (ams leads COVENANT_PROJECTS now):"
ctl ams lag | grep -E "STREAM|PROJECTS"
grep -h "COVENANT_PROJECTS: the replica is ready; deleting" "$DEMO/iad/isthmusd.log" | sed 's/^/iad: /'
grep -h "COVENANT_PROJECTS: deleted durable" "$DEMO/iad/isthmusd.log" | sed 's/^/iad: /'
echo "   (at ams an operator now restores the stream's limits and consumers and deletes"
echo "   isthmus_retention_anchor: docs/operations.md, \"Switchover\")"
echo "health: iad $(ctl iad health | awk 'NR==1{print $2}'), ams $(ctl ams health | awk 'NR==1{print $2}'), syd $(ctl syd health | awk 'NR==1{print $2}')"

echo
echo "== stream state in each region:"
for s in "${STREAMS[@]}" COVENANT_AUDIT; do
  for r in "${REGIONS[@]}"; do
    printf "%-18s %s: " "$s" "$r"
    "$LOADGEN" info --url "nats://127.0.0.1:${NATS_PORT[$r]}" --stream "$s" |
      python3 -c 'import json,sys; s=json.load(sys.stdin)["state"]; print("messages=%d first_seq=%d last_seq=%d" % (s["messages"], s["first_seq"], s["last_seq"]))'
  done
done

if [ "$HOLD" = 1 ]; then
  echo
  echo "== holding: everything stays up until Ctrl-C (then it is stopped and cleaned up as usual)"
  for r in "${REGIONS[@]}"; do
    echo "   $r: status page http://127.0.0.1:${HTTP_PORT[$r]}/   $CTL --url http://127.0.0.1:${HTTP_PORT[$r]} lag"
    echo "        nats nats://127.0.0.1:${NATS_PORT[$r]}, config $DEMO/$r/isthmus.toml, log $DEMO/$r/isthmusd.log"
    echo "        isthmusd pid ${DAEMON_PID[$r]} (kill -HUP to reload), links on 127.0.0.1:${LINK_PORT[$r]}"
  done
  echo "   link TLS: CA $DEMO/tls/ca.pem (key ca.key beside it, to sign another region's certificate)"
  echo "   stop: Ctrl-C, or kill -TERM $$ when this runs in the background"
  echo "   no traffic now; to publish some: $LOADGEN publish --url nats://127.0.0.1:${NATS_PORT[iad]} \\"
  echo "     --subjects covenant.countries.created --count 2000 --rate 200"
  SLEEPER=
  trap 'kill $SLEEPER 2>/dev/null; echo; exit 0' INT TERM
  while :; do sleep 3600 & SLEEPER=$!; wait $SLEEPER || true; done
fi
