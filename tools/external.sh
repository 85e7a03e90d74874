#!/usr/bin/env bash
# Varsel's fan-out against sinks in another process, as an outside check
# would run it: the built binary (`varsel serve`, embedded NATS), the
# go-smtp sink of tools/faultsinks, and a go-mail blaster (tools/smtpblast)
# on the same 8 connections, taken in turn. It prints each blast's rate,
# each fan-out's (from before the publish to the last email at the sink)
# and the fan-out's CPU per email. With "email,webhook" every subscriber
# also has a webhook to one net/http endpoint of the sink process, and the
# blaster posts as many webhooks over 32 keep-alive connections beside its
# emails (Varsel's 32 webhook workers), and each fan-out's timeline says
# when the first and last of each channel came and how many emails were in
# when the webhooks ended. Everything listens on 127.0.0.1.
# Usage: bash tools/external.sh [rounds] [subscribers] [email|email,webhook]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
n=${2:-20000}
channels=${3:-email}
case $channels in
  email) hooks=0 sinkflags=() ;;
  email,webhook) hooks=$n sinkflags=(-hook-sink 127.0.0.1:9098) ;;
  *) echo "external.sh: channels must be email or email,webhook, not $channels" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "$work/" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/varsel" ./cmd/varsel
go build -o "$work/faultsinks" ./tools/faultsinks
go build -o "$work/smtpblast" ./tools/smtpblast
V="$work/varsel"
export VARSEL_LOG_LEVEL=warn VARSEL_METRICS_ADDR= VARSEL_WEBHOOK_ALLOW_PRIVATE=true VARSEL_WEBHOOK_OUTBOX=false

now() { date +%s.%N; }
sinks() {
  pkill -f "$work/faultsinks" 2>/dev/null || true
  while pgrep -f "$work/faultsinks" >/dev/null; do sleep 0.05; done
  (cd "$work" && "$work/faultsinks" -emails "$n" -grey-every 0 -hooks 0 ${sinkflags[@]+"${sinkflags[@]}"} >"$work/sinks.log" 2>&1 &)
  until curl -sf http://127.0.0.1:9099/stats >/dev/null; do sleep 0.05; done
}
fanout() {
  local d="$work/d"; rm -rf "$d"; sinks
  VARSEL_DATA_DIR="$d" VARSEL_HTTP_ADDR=127.0.0.1:18080 VARSEL_NATS_LISTEN=127.0.0.1:14223 \
    VARSEL_SMTP_URL="smtp://127.0.0.1:2525?tls=none&pool=8" "$V" serve >"$work/serve.log" 2>&1 &
  local pid=$!
  until curl -sf http://127.0.0.1:18080/readyz >/dev/null; do sleep 0.05; done
  VARSEL_DATA_DIR="$d" "$V" subscribers import "$work/faults.csv" --nats nats://127.0.0.1:14223 >/dev/null
  sleep 2 # let the import's writes settle
  local c0 t0 t1 c1
  c0=$(awk '{print $14+$15}' /proc/$pid/stat); t0=$(now)
  printf '{"id":"external-1","type":"incident.updated","time":"2019-09-17T10:00:00+02:00","incident":{"id":"external","title":{"en":"Slow logins","nb":"Treg innlogging"},"status":"identified","impact":"minor","components":["web"],"started_at":"2019-09-17T09:00:00+02:00","message":{"en":"We are on it.","nb":"Vi jobber med saken."}}}' |
    VARSEL_DATA_DIR="$d" "$V" publish - --nats nats://127.0.0.1:14223 >/dev/null
  # The sink answers when the last email is in: a loop polling /stats
  # would take CPU from the fan-out that the blaster's run does not pay.
  local timeline
  timeline=$(curl -sf "http://127.0.0.1:9099/wait?emails=$n&hooks=$hooks&timeout=300s&since=$(echo "$t0 * 1000000000 / 1" | bc)" | tail -n 1)
  t1=$(now); c1=$(awk '{print $14+$15}' /proc/$pid/stat)
  local m=$((n + hooks)) what=emails
  [ "$hooks" -gt 0 ] && what="messages (emails and webhooks)"
  [ "$hooks" -gt 0 ] && echo "  timeline: $timeline"
  echo "varsel serve: $m $what in $(echo "$t1 - $t0" | bc -l | xargs printf '%.2f') s = $(echo "$m / ($t1 - $t0)" | bc -l | xargs printf '%.0f')/s, CPU $(( (c1 - c0) * 10000 / m )) µs per message"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for _ in $(seq "$rounds"); do
  sinks; "$work/smtpblast" -n "$n" -conns 8 -hooks "$hooks"
  fanout
done
