#!/usr/bin/env bash
# Smoke test of the compose cluster, on a throwaway project: start 3 meta,
# 3 data and 2 session containers and wait until all are healthy; check
# meta's member list; scale sessions to 4 and wait for meta to list them;
# kill one data node and check that the cluster stays ready and every slot
# gets a leader among the survivors; start it again and wait for it to
# rejoin; tear everything down (containers, network, volumes) however it
# ends. About 40s, half of it meta's 15s dead grace for the killed node.
#
# Run it through `make compose-smoke`, which builds the binaries and the
# image first. Environment:
#   STRATA_IMAGE   image to run (default strata:dev)
#   COMPOSE        compose command (default: `docker compose` if present,
#                  else docker-compose)
#   SMOKE_TIMEOUT  overall bound in seconds (default 180)
#   KEEP=1         leave the cluster running (and its volumes) at the end
#
# On failure, every container's log goes to run/compose-smoke/<project>/.
set -euo pipefail
cd "$(dirname "$0")/../.."

export STRATA_IMAGE=${STRATA_IMAGE:-strata:dev}
# Health checks every 2s instead of 5s: the smoke run waits on them.
export STRATA_HEALTH_INTERVAL=${STRATA_HEALTH_INTERVAL:-2s}
TIMEOUT=${SMOKE_TIMEOUT:-180}
if [ -z "${COMPOSE:-}" ]; then
  if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE=docker-compose; fi
fi
read -ra compose_cmd <<<"$COMPOSE"
# Letters and digits only: docker-compose v1 and v2 normalise project names
# differently, and the name is matched against container labels below.
project="stratasmoke$$"
file=deploy/compose/docker-compose.yml
logdir="run/compose-smoke/$project"
end=$((SECONDS + TIMEOUT))
start=$SECONDS

log() { printf '[smoke %3ds] %s\n' $((SECONDS - start)) "$*"; }
fail() {
  log "FAIL: $*" >&2
  exit 1
}
# left prints the seconds left before the overall deadline (at least 1).
left() {
  local l=$((end - SECONDS))
  [ $l -gt 0 ] || l=1
  echo $l
}
# c runs a compose command on the smoke project, bounded by the deadline.
c() { timeout "$(left)" "${compose_cmd[@]}" -f "$file" -p "$project" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ $rc -ne 0 ]; then
    mkdir -p "$logdir"
    timeout 60 "${compose_cmd[@]}" -f "$file" -p "$project" ps >"$logdir/ps.txt" 2>&1 || true
    timeout 60 "${compose_cmd[@]}" -f "$file" -p "$project" logs --no-color --timestamps >"$logdir/compose.log" 2>&1 || true
    log "logs of every container: $logdir/compose.log (states: $logdir/ps.txt)" >&2
  fi
  if [ "${KEEP:-}" = 1 ]; then
    log "KEEP=1: project $project left running; stop it with: $COMPOSE -f $file -p $project down -v"
  else
    log "tearing down project $project"
    timeout 90 "${compose_cmd[@]}" -f "$file" -p "$project" down -v --remove-orphans -t 5 >/dev/null 2>&1 ||
      echo "teardown failed: run '$COMPOSE -f $file -p $project down -v'" >&2
  fi
  if [ $rc -eq 0 ]; then log "PASS in $((SECONDS - start))s"; else log "FAILED after $((SECONDS - start))s" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# eventually STEP_SECONDS WHAT CMD...: runs CMD every second until it
# succeeds, for at most STEP_SECONDS (and never past the overall deadline).
# On timeout, fails with CMD's last output.
eventually() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs)) out
  [ $deadline -le $end ] || deadline=$end
  log "waiting for $what"
  until out=$("$@" 2>&1); do
    [ $SECONDS -lt $deadline ] || fail "$what: not after ${secs}s: $out"
    sleep 1
  done
  # One line: the admin JSON is indented.
  [ -z "$out" ] || log "  $(tr -s ' \n' ' ' <<<"$out" | sed 's/ $//')"
}

# healthy MIN: every running container healthy, at least MIN of them.
healthy() { deploy/compose/wait-healthy.sh "$project" "$(left)" "$1" || fail "containers not healthy (want $1)"; }

# get PATH: GET from meta-1's published admin port.
meta_http=""
get() { curl -fsS --max-time 3 "http://$meta_http$1"; }

# members DATA SESSIONS: meta lists exactly that many data and session nodes.
members() {
  local body d s
  body=$(get /api/v1/members) || return 1
  # The admin JSON is indented one field per line.
  d=$(grep -c '"role": "data"' <<<"$body" || true)
  s=$(grep -c '"role": "session"' <<<"$body" || true)
  echo "meta lists $d data and $s session nodes"
  [ "$d" -eq "$1" ] && [ "$s" -eq "$2" ]
}

# slots_led [NODE]: every slot of the table has a leader (none of them NODE).
slots_led() {
  local body total led bad=0
  body=$(get /api/v1/slots) || return 1
  total=$(grep -o '"Count": [0-9]*' <<<"$body" | grep -o '[0-9]*$' || true)
  led=$(grep -c '"leader": "[^"]' <<<"$body" || true)
  [ -z "${1:-}" ] || bad=$(grep -c "\"leader\": \"$1\"" <<<"$body" || true)
  echo "$led of ${total:-?} slots have a leader${1:+, $bad of them $1}"
  [ -n "$total" ] && [ "$led" -eq "$total" ] && [ "$bad" -eq 0 ]
}

command -v curl >/dev/null || fail "curl is needed on the host"
docker image inspect "$STRATA_IMAGE" >/dev/null 2>&1 ||
  fail "image $STRATA_IMAGE not found: run 'make compose-image' (or 'make compose-smoke')"

log "project $project, image $STRATA_IMAGE, compose: $COMPOSE, bound ${TIMEOUT}s"
log "starting 3 meta, 3 data, 2 session"
out=$(c up -d 2>&1) || fail "compose up: $out"
healthy 8

meta_http=$(c port meta-1 9616 | tail -n 1)
[ -n "$meta_http" ] || fail "meta-1's admin port is not published"
log "meta-1 admin HTTP on $meta_http"
eventually 30 "meta-1 ready" get /readyz
eventually 30 "3 data and 2 session members" members 3 2
log "healthcheck subcommand through compose exec:"
c exec -T meta-2 meta healthcheck | sed 's/^/  /'
eventually 60 "every slot led" slots_led

log "scaling session to 4"
out=$(c up -d --no-recreate --scale session=4 2>&1) || fail "compose up --scale: $out"
healthy 10
eventually 30 "meta to list 4 sessions" members 3 4

# --- registryctl: publish/subscribe steps go here ---------------------------
# registryctl is built into the image when cmd/registryctl exists (the image
# copies all of bin/). Run it on the compose network, e.g.
#   docker run --rm --network "${project}_default" "$STRATA_IMAGE" \
#     registryctl --meta meta-1:9615 ...
# (the network is "<project>_default"). Add: publish through one session,
# subscribe through another, check the push; re-check after the data kill.
# ---------------------------------------------------------------------------

victim=$(c ps -q data-2)
[ -n "$victim" ] || fail "no data-2 container"
log "killing data-2 (docker kill ${victim:0:12}); restart policy leaves a killed container down"
docker kill "$victim" >/dev/null
eventually 60 "meta to drop data-2 (dead grace 15s)" members 2 4
eventually 60 "every slot led by a surviving data node" slots_led data-2
eventually 30 "meta-1 ready" get /readyz
healthy 9

log "restarting data-2"
out=$(c start data-2 2>&1) || fail "compose start data-2: $out"
eventually 60 "meta to list data-2 again" members 3 4
healthy 10
eventually 60 "every slot led" slots_led

log "cluster state:"
c ps | sed 's/^/  /'
