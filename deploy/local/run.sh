#!/usr/bin/env bash
# Starts a local Strata cluster on loopback, no Docker: META meta nodes,
# DATA data nodes (3 each by default) and SESSION session nodes (2), each
# with its own data dir and log under run/. Ctrl-C (or SIGTERM) stops them
# all, also halfway through starting (SIGKILL for any node still running
# STOP_WAIT seconds later, default 20). Run it through `make run`, which
# builds the binaries first (registryctl included).
#
# Secure by default: on first start `registryctl certs init run/certs`
# writes a development CA, a certificate per node, a client (dev) and an
# operator (admin) identity with tokens, the tokens file and a gossip key,
# and every node runs with --credentials run/certs (TLS and identities on
# every link, encrypted gossip). INSECURE=1 runs plaintext (--insecure).
# SESSION_FLAGS adds flags to every session node (words split on spaces),
# e.g. SESSION_FLAGS="--push-ack-delay 0".
#
# Ports, node i (0-based): meta gRPC 9615+100i, HTTP 9616+100i, Raft 9614+100i,
# gossip 7946+100i; data gRPC 9622+100i, HTTP 9623+100i, gossip 7956+100i;
# session gRPC 9603+100i, HTTP 9604+100i, HTTP API 9605+100i, gossip 7966+100i.
set -euo pipefail
cd "$(dirname "$0")/../.."

META=${META:-3}
DATA=${DATA:-3}
SESSION=${SESSION:-2}
BIN=${BIN:-bin}
RUN=${RUN:-run}
WAIT=${WAIT:-30}
CERTS=${CERTS:-$RUN/certs}
INSECURE=${INSECURE:-}
read -ra session_flags <<<"${SESSION_FLAGS:-}"

pids=()
# stop stops every node started: SIGTERM, then SIGKILL for any still
# running after STOP_WAIT seconds. A second Ctrl-C (a terminal sends one
# to the nodes as well) does not cut it short and orphan them.
stop() {
  trap - EXIT
  trap '' INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    echo
    echo "stopping ${#pids[@]} node(s)..."
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + ${STOP_WAIT:-20})) alive
    while :; do
      alive=()
      for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
      [ ${#alive[@]} -gt 0 ] && [ $SECONDS -lt $deadline ] || break
      sleep 0.2
    done
    if [ ${#alive[@]} -gt 0 ]; then
      echo "killing ${#alive[@]} node(s) still running after ${STOP_WAIT:-20}s: pids ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
    fi
    wait "${pids[@]}" 2>/dev/null || true
  fi
  echo "stopped. logs and data remain in $RUN/ (rm -rf $RUN to start afresh)"
}
trap stop EXIT
# Exiting runs stop; without the exits, a signal during startup would stop
# the nodes started so far and go on starting the rest.
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$RUN"
ids() { # ids PREFIX N: PREFIX-0,...,PREFIX-(N-1)
  local out="" i
  for i in $(seq 0 $(($2 - 1))); do out="${out:+$out,}$1-$i"; done
  echo "$out"
}
if [ -n "$INSECURE" ]; then
  secure=(--insecure)
  scheme=http
  curl_tls=()
  echo "INSECURE=1: every node runs without TLS; nothing is authenticated"
else
  "$BIN/registryctl" certs init "$CERTS" --meta-nodes "$(ids meta "$META")" \
    --data-nodes "$(ids data "$DATA")" --session-nodes "$(ids session "$SESSION")" >"$RUN/certs-init.log"
  echo "credentials: $CERTS (written on first start; list: $RUN/certs-init.log)"
  secure=(--credentials "$CERTS")
  scheme=https
  curl_tls=(--cacert "$CERTS/ca.pem")
fi
seeds=""
for i in $(seq 0 $((META - 1))); do
  seeds="${seeds:+$seeds,}127.0.0.1:$((7946 + 100 * i))"
done

for i in $(seq 0 $((META - 1))); do
  id="meta-$i"
  mkdir -p "$RUN/$id"
  "$BIN/meta" --node-id "$id" --data-dir "$RUN/$id/data" \
    --grpc-addr "127.0.0.1:$((9615 + 100 * i))" --http-addr "127.0.0.1:$((9616 + 100 * i))" \
    --raft-addr "127.0.0.1:$((9614 + 100 * i))" --gossip-addr "127.0.0.1:$((7946 + 100 * i))" \
    --bootstrap-expect "$META" --join "$seeds" "${secure[@]}" >"$RUN/$id/$id.log" 2>&1 &
  pids+=($!)
  echo "started $id (pid $!), log: $RUN/$id/$id.log"
done

# wait_ready URL WHAT: poll a /readyz until it answers 200, showing progress.
wait_ready() {
  printf 'waiting for %s' "$2"
  local deadline=$((SECONDS + WAIT))
  # ${a[@]+"${a[@]}"}: empty with INSECURE=1, and bash before 4.4 calls
  # an empty array unbound under set -u.
  until curl -fsS ${curl_tls[@]+"${curl_tls[@]}"} "$1" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo; echo "$2: not ready after ${WAIT}s; see the logs above" >&2
      exit 1
    fi
    for p in "${pids[@]}"; do
      kill -0 "$p" 2>/dev/null || { echo; echo "a node exited; see the logs above" >&2; exit 1; }
    done
    printf '.'
    sleep 0.5
  done
  echo " ready."
}
wait_ready "$scheme://127.0.0.1:9616/readyz" "a meta leader"

metas=""
for i in $(seq 0 $((META - 1))); do
  metas="${metas:+$metas,}127.0.0.1:$((9615 + 100 * i))"
done
for i in $(seq 0 $((DATA - 1))); do
  id="data-$i"
  mkdir -p "$RUN/$id"
  "$BIN/data" --node-id "$id" --meta "$metas" --join "$seeds" "${secure[@]}" \
    --grpc-addr "127.0.0.1:$((9622 + 100 * i))" --http-addr "127.0.0.1:$((9623 + 100 * i))" \
    --gossip-addr "127.0.0.1:$((7956 + 100 * i))" >"$RUN/$id/$id.log" 2>&1 &
  pids+=($!)
  echo "started $id (pid $!), log: $RUN/$id/$id.log"
done
for i in $(seq 0 $((DATA - 1))); do
  wait_ready "$scheme://127.0.0.1:$((9623 + 100 * i))/readyz" "data-$i to hold its slots"
done
for i in $(seq 0 $((SESSION - 1))); do
  id="session-$i"
  mkdir -p "$RUN/$id"
  "$BIN/session" --node-id "$id" --meta "$metas" --join "$seeds" "${secure[@]}" \
    --grpc-addr "127.0.0.1:$((9603 + 100 * i))" --http-addr "127.0.0.1:$((9604 + 100 * i))" \
    --http-api-listen "127.0.0.1:$((9605 + 100 * i))" \
    --gossip-addr "127.0.0.1:$((7966 + 100 * i))" ${session_flags[@]+"${session_flags[@]}"} >"$RUN/$id/$id.log" 2>&1 &
  pids+=($!)
  echo "started $id (pid $!), log: $RUN/$id/$id.log"
done
for i in $(seq 0 $((SESSION - 1))); do
  wait_ready "$scheme://127.0.0.1:$((9604 + 100 * i))/readyz" "session-$i"
done
echo
echo "Strata is running on 127.0.0.1: $META meta, $DATA data, $SESSION session nodes"
for i in $(seq 0 $((META - 1))); do
  echo "  meta-$i  gRPC 127.0.0.1:$((9615 + 100 * i))  HTTP $scheme://127.0.0.1:$((9616 + 100 * i))"
done
for i in $(seq 0 $((DATA - 1))); do
  echo "  data-$i  gRPC 127.0.0.1:$((9622 + 100 * i))  HTTP $scheme://127.0.0.1:$((9623 + 100 * i))"
done
for i in $(seq 0 $((SESSION - 1))); do
  echo "  session-$i  clients 127.0.0.1:$((9603 + 100 * i))  HTTP $scheme://127.0.0.1:$((9604 + 100 * i))  HTTP API $scheme://127.0.0.1:$((9605 + 100 * i))"
done
echo
ctl="$BIN/registryctl"
last_session="127.0.0.1:$((9603 + 100 * (SESSION - 1)))"
if [ -z "$INSECURE" ] && [ "$CERTS" != run/certs ]; then
  # registryctl finds run/certs by itself; elsewhere, tell it.
  echo "registryctl needs the credentials (the operator for cluster commands, the dev client for pub/sub/get):"
  echo "  export STRATA_CREDENTIALS=$CERTS"
elif [ -n "$INSECURE" ]; then
  echo "registryctl needs --insecure for a plaintext cluster:"
  echo "  export STRATA_INSECURE=true"
fi
echo "Try (registryctl's defaults, --meta 127.0.0.1:9615 and --session 127.0.0.1:9603, are meta-0 and session-0):"
echo "  $ctl members"
echo "  $ctl slots"
echo "  $ctl slot-of com.example.echo"
echo "  $ctl ls --all                                            # the services held"
echo "  $ctl health"
echo "  $ctl --meta $metas leader"
echo "  $ctl pub com.example.echo 10.0.0.1:8080                  # holds it until Ctrl-C"
echo "  $ctl --session $last_session sub com.example.echo     # in another terminal"
echo "  $ctl --session '' get com.example.echo -o json         # through a session meta lists"
echo "Admin HTTP (/api and /debug need the operator's token or certificate):"
if [ -z "$INSECURE" ]; then
  # The header from a file (printf is a builtin), so the token stays out
  # of the process list.
  auth="--cacert $CERTS/ca.pem -H @<(printf 'Authorization: Bearer %s\\n' \"\$(cat $CERTS/admin/admin.token)\")"
else
  auth=""
fi
tls_opt=${curl_tls[*]:-}
echo "  curl -s $auth $scheme://127.0.0.1:9616/api/v1/members"
echo "  curl -s $auth $scheme://127.0.0.1:9623/api/v1/slots | head -40"
echo "  curl -s $tls_opt $scheme://127.0.0.1:9623/metrics | grep strata_data"
echo "  curl -s $tls_opt $scheme://127.0.0.1:9604/metrics | grep -E 'strata_(session|push)'"
echo "Web console: $scheme://127.0.0.1:9616/ui/ (any meta node's /ui/)"
if [ -z "$INSECURE" ]; then
  echo "  it asks for the admin token: $CERTS/admin/admin.token; the browser must trust $CERTS/ca.pem"
fi
echo "HTTP API on each session (register with a TTL, heartbeat, watch; the dev client's token; spec: /openapi.json):"
if [ -z "$INSECURE" ]; then
  dev="--cacert $CERTS/ca.pem -H @<(printf 'Authorization: Bearer %s\\n' \"\$(cat $CERTS/client/dev.token)\")"
else
  dev=""
fi
api="$scheme://127.0.0.1:9605/v1/services"
echo "  curl -s $dev -X PUT $api/com.example.echo/instances/web-1 -d '{\"addr\":\"10.0.0.1:8080\",\"ttl\":\"30s\"}'"
echo "  curl -s $dev -X PUT $api/com.example.echo/instances/web-1/heartbeat     # within the TTL"
echo "  curl -sN $dev $api/com.example.echo/watch                                  # Server-Sent Events"
echo "  curl -s $dev $api"
echo
echo "Logs and data: $RUN/. Press Ctrl-C to stop."
wait
