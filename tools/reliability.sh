#!/usr/bin/env bash
# Measures how Varsel keeps moving when parts fail (docs/reliability.md):
# the built binary, an external nats-server built from the module cache,
# and loopback sinks (tools/faultsinks) that greylist, fail and count.
# Everything listens on 127.0.0.1. Usage: bash tools/reliability.sh [scenario...]
# Scenarios (default all): failing kill_one restart lock natsdown cluster
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "$work/" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/varsel" ./cmd/varsel
go build -o "$work/faultsinks" ./tools/faultsinks
go build -o "$work/nats-server" github.com/nats-io/nats-server/v2
V="$work/varsel"
NATS=nats://127.0.0.1:14222
export VARSEL_WEBHOOK_ALLOW_PRIVATE=true VARSEL_WEBHOOK_OUTBOX=false VARSEL_LOG_LEVEL=warn

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l | xargs printf '%.1f'; }
stats() { curl -s http://127.0.0.1:9099/stats; }
field() { stats | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
wait_field() { # field value timeout
  local t0; t0=$(now)
  until [ "$(field "$1")" -ge "$2" ]; do
    if [ "$(echo "$(now) - $t0 > $3" | bc)" = 1 ]; then echo "timeout"; return 1; fi
    sleep 0.05
  done
}
event() { # id
  printf '{"id":"%s","type":"incident.updated","time":"2019-09-17T10:00:00+02:00","incident":{"id":"reliability","title":{"en":"Slow logins"},"status":"identified","impact":"minor","components":["web"],"started_at":"2019-09-17T09:00:00+02:00","message":{"en":"We are on it."}}}' "$1"
}
start_nats() {
  "$work/nats-server" -js -sd "$work/js" -a 127.0.0.1 -p 14222 >"$work/nats.log" 2>&1 &
  echo $! >"$work/nats.pid"
  until (echo >/dev/tcp/127.0.0.1/14222) 2>/dev/null; do sleep 0.05; done
}
serve() { # name extra-env...
  local name=$1; shift
  # No /metrics listener: two instances would both want 127.0.0.1:9090.
  env VARSEL_METRICS_ADDR= "$@" VARSEL_NATS_URL=$NATS VARSEL_DATA_DIR="$work/$name" VARSEL_SMTP_URL="smtp://127.0.0.1:2525?tls=none&pool=8" \
    "$V" serve >"$work/$name.log" 2>&1 &
  echo $! >"$work/$name.pid"
}
ready() { # addr: wait for its /readyz; give up with the logs after 60 s
  local t0; t0=$(date +%s)
  until curl -sf "http://$1/readyz" >/dev/null; do
    if [ $(( $(date +%s) - t0 )) -gt 60 ]; then echo "not ready after 60 s: $1"; tail -n 3 "$work"/*.log; exit 1; fi
    sleep 0.05
  done
}
sinks() { (cd "$work" && "$work/faultsinks" "$@" >"$work/sinks.log" 2>&1 &); until curl -sf http://127.0.0.1:9099/stats >/dev/null; do sleep 0.05; done; }
stop_all() { kill $(jobs -p) 2>/dev/null || true; pkill -f "$work/faultsinks" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work/js" "$work"/a "$work"/b; }

failing() {
  echo "== 40 greylisted of 1,000 emails, 40 failing of 240 webhook endpoints"
  start_nats; sinks -emails 1000 -grey-every 25 -hooks 240 -fail-every 6
  serve a VARSEL_HTTP_ADDR=127.0.0.1:18080; ready 127.0.0.1:18080
  "$V" subscribers import "$work/faults.csv" --allow-private-webhooks --nats $NATS >/dev/null
  t0=$(now); event fail-1 | "$V" publish - --nats $NATS >/dev/null
  wait_field emails_delivered 960 240 && echo "960 healthy emails in $(since "$t0") s"
  wait_field hooks_delivered 200 90 && echo "200 healthy endpoints in $(since "$t0") s"
  stop_all
}

kill_one() {
  echo "== two instances, one killed -9 mid fan-out (20,000 emails)"
  start_nats; sinks -emails 20000 -grey-every 0 -hooks 0
  serve a VARSEL_HTTP_ADDR=127.0.0.1:18080; serve b VARSEL_HTTP_ADDR=127.0.0.1:18081
  ready 127.0.0.1:18080; ready 127.0.0.1:18081
  "$V" subscribers import "$work/faults.csv" --nats $NATS >/dev/null
  t0=$(now); event kill-1 | "$V" publish - --nats $NATS >/dev/null
  wait_field emails_delivered 3000 60
  kill -9 "$(cat "$work/a.pid")"; tk=$(now)
  wait_field emails_delivered 20000 120 && echo "all 20,000 delivered $(since "$tk") s after the kill; longest pause between deliveries $(field max_gap_ms) ms; $(( $(field emails_total) - 20000 )) duplicates"
  stop_all
}

restart() {
  echo "== one instance (embedded NATS) killed -9 mid fan-out and restarted (20,000 emails)"
  sinks -emails 20000 -grey-every 0 -hooks 0
  local d="$work/single"
  run1() { VARSEL_METRICS_ADDR= VARSEL_DATA_DIR="$d" VARSEL_HTTP_ADDR=127.0.0.1:18080 VARSEL_NATS_LISTEN=127.0.0.1:14223 VARSEL_SMTP_URL="smtp://127.0.0.1:2525?tls=none&pool=8" "$V" serve >>"$work/single.log" 2>&1 & echo $! >"$work/single.pid"; }
  run1; ready 127.0.0.1:18080
  # The embedded server asks for the credentials serve wrote in its data
  # directory; the CLI finds them there.
  VARSEL_DATA_DIR="$d" "$V" subscribers import "$work/faults.csv" --nats nats://127.0.0.1:14223 >/dev/null
  event restart-1 | VARSEL_DATA_DIR="$d" "$V" publish - --nats nats://127.0.0.1:14223 >/dev/null
  wait_field emails_delivered 3000 60
  kill -9 "$(cat "$work/single.pid")"; sleep 0.2
  before=$(field emails_delivered); tr=$(now); run1; ready 127.0.0.1:18080; echo "restarted and ready in $(since "$tr") s"
  until [ "$(field emails_delivered)" -gt "$before" ]; do sleep 0.05; done
  echo "sending again $(since "$tr") s after the restart"
  wait_field emails_delivered 20000 120 && echo "all 20,000 delivered $(since "$tr") s after the restart; $(( $(field emails_total) - 20000 )) duplicates"
  stop_all; rm -rf "$d"
}

lock() {
  echo "== a second serve on a data directory in use"
  local d="$work/locked"
  VARSEL_METRICS_ADDR= VARSEL_DATA_DIR="$d" VARSEL_HTTP_ADDR=127.0.0.1:18080 VARSEL_NATS_LISTEN=127.0.0.1:14223 "$V" serve >/dev/null 2>&1 &
  ready 127.0.0.1:18080
  t0=$(now)
  VARSEL_METRICS_ADDR= VARSEL_DATA_DIR="$d" VARSEL_HTTP_ADDR=127.0.0.1:18081 VARSEL_NATS_LISTEN=127.0.0.1:14224 "$V" serve 2>&1 | tail -1 || true
  echo "refused in $(since "$t0") s"
  t0=$(now)
  VARSEL_METRICS_ADDR= VARSEL_DATA_DIR="$work/other" VARSEL_HTTP_ADDR=127.0.0.1:18080 VARSEL_NATS_LISTEN=127.0.0.1:14225 "$V" serve 2>&1 | tail -1 || true
  echo "taken HTTP port refused in $(since "$t0") s"
  stop_all; rm -rf "$d" "$work/other"
}

natsdown() {
  echo "== NATS stopped under a running page"
  start_nats
  serve a VARSEL_HTTP_ADDR=127.0.0.1:18080; ready 127.0.0.1:18080
  event down-1 | "$V" publish - --nats $NATS >/dev/null; sleep 1
  kill "$(cat "$work/nats.pid")"; sleep 1
  for p in / /incidents/reliability /feed.atom /api/v1/status /readyz; do
    curl -s -o /dev/null -w "$p %{http_code} in %{time_total} s\n" "http://127.0.0.1:18080$p"
  done
  stop_all
}

# cluster: three nats-server processes clustered with JetStream (R3), two
# serve instances given all three, and the node leading the job queue
# killed -9 mid fan-out, as an outside check of issue 12 would do it.
CLUSTER=nats://127.0.0.1:14231,nats://127.0.0.1:14232,nats://127.0.0.1:14233
start_node() { # k (1-3)
  "$work/nats-server" -js -sd "$work/js$1" -a 127.0.0.1 -p "1423$1" -m "1823$1" --server_name "n$1" \
    --cluster_name varsel --cluster "nats://127.0.0.1:1623$1" \
    --routes nats://127.0.0.1:16231,nats://127.0.0.1:16232,nats://127.0.0.1:16233 >"$work/n$1.log" 2>&1 &
  echo $! >"$work/n$1.pid"
}
leader_of() { # stream (or meta): the server name of its leader, from any live node's /jsz
  local k
  if [ "$1" = meta ]; then
    for k in 1 2 3; do
      curl -sf "http://127.0.0.1:1823$k/jsz" 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['meta_cluster']['leader'])" && return 0
    done
    return 1
  fi
  for k in 1 2 3; do
    curl -sf "http://127.0.0.1:1823$k/jsz?streams=true" 2>/dev/null | python3 -c "
import json,sys
for a in json.load(sys.stdin).get('account_details') or []:
    for st in a.get('stream_detail') or []:
        if st['name'] == '$1' and (st.get('cluster') or {}).get('leader'):
            print(st['cluster']['leader']); sys.exit(0)
sys.exit(1)" && return 0
  done
  return 1
}
cluster() {
  echo "== a node of a three-node NATS cluster killed -9 mid fan-out (R3, two instances, 20,000 emails)"
  local k
  for k in 1 2 3; do start_node "$k"; done
  for k in 1 2 3; do until curl -sf "http://127.0.0.1:1823$k/healthz?js-enabled-only=true" >/dev/null; do sleep 0.1; done; done
  sinks -emails 20000 -grey-every 0 -hooks 0
  NATS=$CLUSTER serve a VARSEL_HTTP_ADDR=127.0.0.1:18080 VARSEL_NATS_REPLICAS=3
  NATS=$CLUSTER serve b VARSEL_HTTP_ADDR=127.0.0.1:18081 VARSEL_NATS_REPLICAS=3
  local ti; ti=$(now); ready 127.0.0.1:18080; ready 127.0.0.1:18081; echo "both instances ready in $(since "$ti") s"
  ti=$(now); VARSEL_NATS_REPLICAS=3 "$V" subscribers import "$work/faults.csv" --nats $CLUSTER >/dev/null
  echo "20,000 subscribers imported on R3 in $(since "$ti") s"
  local what=${KILL_STREAM:-VARSEL_DELIVERIES} leader; leader=$(leader_of "$what")
  t0=$(now); event cluster-1 | VARSEL_NATS_REPLICAS=3 "$V" publish - --nats $CLUSTER >/dev/null
  wait_field emails_delivered 5000 60
  kill -9 "$(cat "$work/$leader.pid")"; tk=$(now)
  echo "killed $leader (the leader of $what) with $(field emails_delivered) of 20,000 in, $(since "$t0") s after the publish"
  wait_field emails_delivered 20000 120 && echo "all 20,000 delivered $(since "$tk") s after the kill; longest pause between deliveries $(field max_gap_ms) ms; $(( $(field emails_total) - 20000 )) duplicates"
  [ -n "${SHOW_LOGS:-}" ] && grep -h . "$work/a.log" "$work/b.log" | cut -c1-400 | tail -n 40
  stop_all; rm -rf "$work"/js1 "$work"/js2 "$work"/js3
}

scenarios=${*:-failing kill_one restart lock natsdown cluster}
for s in $scenarios; do $s; done
