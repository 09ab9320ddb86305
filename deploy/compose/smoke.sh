#!/usr/bin/env bash
# Smoke test of the compose cluster, on a throwaway project: start 3 meta,
# 3 data and 2 session containers and wait until all are healthy; check
# that each node holds only its share of the credentials (no CA key on a
# data or session node, no node mounting the full `ca` volume); check
# meta's member list and registryctl's members and health; publish a value
# with registryctl through one session and see a subscriber on the other
# get it, and 7 more publishers (clients found through meta); scale
# sessions to 4 and wait until connection balance has moved clients onto
# every new session; kill one data node and check that the cluster stays
# ready, every slot gets a leader among the survivors, and no published
# value went missing, neither in a subscriber's pushes meanwhile nor
# afterwards; start it again and wait for it to rejoin; stop the
# publishers and check their values are gone; tear everything down
# (containers, network, volumes, registryctl containers) however it ends.
# About two minutes, 15s of it meta's dead grace for the killed node.
#
# Run it through `make compose-smoke`, which builds the binaries and the
# image first. Environment:
#   STRATA_IMAGE   image to run (default strata:dev)
#   COMPOSE        compose command (default: `docker compose` if present,
#                  else docker-compose)
#   SMOKE_TIMEOUT  overall bound in seconds (default 180)
#   STRATA_BALANCE_INTERVAL  the sessions' connection balance period
#                  (default 5s here; 30s in a plain compose-up)
#   KEEP=1         leave the cluster running (and its volumes) at the end
#
# On failure, every container's log goes to run/compose-smoke/<project>/.
set -euo pipefail
cd "$(dirname "$0")/../.."

export STRATA_IMAGE=${STRATA_IMAGE:-strata:dev}
# The secure cluster, whatever the caller's environment says: the checks
# need TLS and every node's credentials.
unset STRATA_INSECURE STRATA_CREDENTIALS STRATA_ENROLL_TOKEN_FILE STRATA_ADMIN_TOKEN
# Health checks every 2s instead of 5s: the smoke run waits on them.
export STRATA_HEALTH_INTERVAL=${STRATA_HEALTH_INTERVAL:-2s}
# Connection balance every 5s instead of 30s, to see it move clients.
export STRATA_BALANCE_INTERVAL=${STRATA_BALANCE_INTERVAL:-5s}
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

# registryctl containers (outside compose, on its network) carry this label.
ctl_label="strata-smoke=$project"
ctl_containers() { docker ps -aq --filter "label=$ctl_label"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ $rc -ne 0 ]; then
    mkdir -p "$logdir"
    timeout 60 "${compose_cmd[@]}" -f "$file" -p "$project" ps >"$logdir/ps.txt" 2>&1 || true
    timeout 60 "${compose_cmd[@]}" -f "$file" -p "$project" logs --no-color --timestamps >"$logdir/compose.log" 2>&1 || true
    for id in $(ctl_containers); do
      docker logs -t "$id" >"$logdir/registryctl-$(docker inspect -f '{{slice .Name 1}}' "$id").log" 2>&1 || true
    done
    log "logs of every container: $logdir/compose.log and registryctl-*.log (states: $logdir/ps.txt)" >&2
  fi
  if [ "${KEEP:-}" = 1 ]; then
    log "KEEP=1: project $project left running (operator's CA and token: ${creds:-none yet}); stop it with: docker rm -f \$(docker ps -aq --filter label=$ctl_label); $COMPOSE -f $file -p $project down -v"
  else
    log "tearing down project $project"
    # Before compose: their network cannot go while they are on it.
    # shellcheck disable=SC2046 # one ID per word
    [ -z "$(ctl_containers)" ] || docker rm -f $(ctl_containers) >/dev/null 2>&1 || true
    timeout 90 "${compose_cmd[@]}" -f "$file" -p "$project" down -v --remove-orphans -t 5 >/dev/null 2>&1 ||
      echo "teardown failed: run '$COMPOSE -f $file -p $project down -v'" >&2
    # The operator's copied CA and token: worthless now, but no litter.
    [ -z "${creds:-}" ] || rm -rf "$creds"
    rmdir "$logdir" "${logdir%/*}" 2>/dev/null || true
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

# get PATH: GET from meta-1's published admin port, over TLS as the admin
# operator (the CA and token copied out of the operator volume).
meta_http=""
# The header comes from a file, to keep the token out of the process list.
get() {
  curl -fsS --max-time 3 --cacert "$creds/ca.pem" \
    -H @<(printf 'Authorization: Bearer %s\n' "$(cat "$creds/admin.token")") "https://$meta_http$1"
}

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

# registryctl in a throwaway container on the compose network, where the
# sessions' advertised addresses (container IDs) resolve.
# It acts as the operator volume's admin operator and dev client.
ctl_run=(docker run --network "${project}_default" --label "$ctl_label"
  -v "${project}_operator:/credentials:ro" -e STRATA_CREDENTIALS=/credentials)
ctl_cmd=("$STRATA_IMAGE" registryctl --meta meta-1:9615,meta-2:9615,meta-3:9615)
# ctl ARGS...: runs registryctl, bounded by the deadline.
ctl() { timeout "$(left)" "${ctl_run[@]}" --rm "${ctl_cmd[@]}" "$@"; }
# ctl_bg NAME ARGS...: starts registryctl detached as container
# <project>-NAME, kept after it exits (for its logs and exit code) until
# cleanup.
ctl_bg() {
  local name=$1
  shift
  "${ctl_run[@]}" -d --name "$project-$name" "${ctl_cmd[@]}" "$@" >/dev/null
}
# logs_have NAME TEXT: container <project>-NAME printed TEXT.
logs_have() { docker logs "$project-$1" 2>&1 | grep -F -- "$2"; }

# values SESSION KEY WANT: registryctl get KEY through SESSION shows WANT
# values; prints them.
values() {
  local out n
  out=$(ctl --session "$1:9603" get "$2") || return 1
  n=$(head -n 1 <<<"$out" | sed -E 's/^version [0-9]+: ([0-9]+) values?$/\1/')
  echo "$2 through session $1 holds $n: $(tail -n +2 <<<"$out" | awk '{print $NF}' | sort | tr '\n' ' ')"
  [ "$n" = "$3" ]
}

# ids SERVICE: the IDs of SERVICE's running containers (docker ps: much
# quicker than docker-compose v1's ps).
ids() {
  docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1"
}

# cred_files CONTAINER: the files under the container's /credentials, one
# path a line, sorted. The image has no shell or ls: docker cp streams the
# directory as a tar.
cred_files() {
  docker cp "$1:/credentials/." - | tar -t | sed -e 's|^\./||' -e '/\/$/d' -e '/^\.\?$/d' | sort
}

# share_only CONTAINER WHAT ALLOWED...: CONTAINER's /credentials holds
# ca.pem and files matching the extended regexps ALLOWED (its share, and
# the image's README), and nothing else: above all no ca-key.pem unless
# ALLOWED names it. Leaves the list in $files.
share_only() {
  local id=$1 what=$2 extra
  shift 2
  files=$(cred_files "$id") || fail "list $what's /credentials"
  grep -qx 'ca.pem' <<<"$files" || fail "$what holds no ca.pem: $(tr '\n' ' ' <<<"$files")"
  extra=$(grep -vxE "$(printf '%s|' 'ca\.pem' README "$@" | sed 's/|$//')" <<<"$files" || true)
  ! grep -qx 'ca-key.pem' <<<"$extra" || fail "$what holds the CA key: $(tr '\n' ' ' <<<"$files")"
  [ -z "$extra" ] || fail "$what holds more than its share: $(tr '\n' ' ' <<<"$extra")"
  log "  $what: $(tr '\n' ' ' <<<"$files")"
}

# sessions_busy: every session holds at least one client (registryctl
# members, CONNECTIONS column); prints the counts.
sessions_busy() {
  local counts
  counts=$(ctl members | awk '$1 == "session" {print $NF}') || return 1
  echo "clients per session: $(tr '\n' ' ' <<<"$counts")"
  [ -n "$counts" ] && ! grep -qvE '^[1-9][0-9]*$' <<<"$counts"
}

command -v curl >/dev/null || fail "curl is needed on the host"
docker image inspect "$STRATA_IMAGE" >/dev/null 2>&1 ||
  fail "image $STRATA_IMAGE not found: run 'make compose-image' (or 'make compose-smoke')"

log "project $project, image $STRATA_IMAGE, compose: $COMPOSE, bound ${TIMEOUT}s"
log "starting 3 meta, 3 data, 2 session"
out=$(c up -d 2>&1) || fail "compose up: $out"
healthy 8

log "each node holds only its share of the credentials:"
files=""
share_only "$(ids meta-1)" meta-1 'ca-key\.pem' 'meta/meta-1(-key)?\.pem' tokens.yaml gossip.key
# The control: meta signs enrollments, so its share has the CA key; that
# the listing sees it there shows the checks below would see one.
grep -qx 'ca-key.pem' <<<"$files" || fail "meta-1 holds no ca-key.pem (it signs enrollments)"
share_only "$(ids data-1)" data-1 'data/data-1(-key)?\.pem' tokens.yaml gossip.key
for id in $(ids session); do
  # Enrolled sessions share one volume: each one's certificate is there.
  share_only "$id" "session ${id:0:12}" 'enroll/sessions\.token' 'session/[0-9a-f]{12}(-key)?\.pem' tokens.yaml gossip.key
done
# Only certs mounts the full credentials directory.
ca_vol="${project}_ca"
# shellcheck disable=SC2046 # one ID per word
mounts=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}{{range .Mounts}} {{.Name}}{{end}}' \
  $(docker ps -aq --filter "label=com.docker.compose.project=$project"))
bad=$(awk -v vol="$ca_vol" '$1 != "certs" { for (i = 2; i <= NF; i++) if ($i == vol) print $1 }' <<<"$mounts")
[ -z "$bad" ] || fail "mounting $ca_vol: $(tr '\n' ' ' <<<"$bad")"
grep -q "^certs .*$ca_vol" <<<"$mounts" || fail "the mounts listing does not show certs mounting $ca_vol: $mounts"
log "  no node mounts $ca_vol (the full credentials)"

meta_http=$(c port meta-1 9616 | tail -n 1)
[ -n "$meta_http" ] || fail "meta-1's admin port is not published"
# The operator share, from a container never started (docker cp reads its
# volume): the CA and the admin token, for curl on the host.
creds="$logdir/credentials"
mkdir -p "$creds"
op=$(docker create --label "$ctl_label" -v "${project}_operator:/credentials:ro" "$STRATA_IMAGE" registryctl) ||
  fail "create a container on the operator volume"
docker cp -q "$op":/credentials/ca.pem "$creds/ca.pem" || fail "copy the CA out of the operator volume"
docker cp -q "$op":/credentials/admin/admin.token "$creds/admin.token" || fail "copy the admin token out of the operator volume"
log "operator share: CA and admin token copied to $creds"
log "meta-1 admin HTTP on $meta_http"
eventually 30 "meta-1 ready" get /readyz
eventually 30 "3 data and 2 session members" members 3 2
log "healthcheck subcommand through compose exec:"
c exec -T meta-2 meta healthcheck | sed 's/^/  /'
eventually 60 "every slot led" slots_led

log "registryctl members and health, from a container on the compose network:"
ctl members | sed 's/^/  /' || fail "registryctl members"
ctl health >/dev/null || fail "registryctl health: $(ctl health 2>&1)"

# Sessions are reachable by their container hostnames, the short IDs.
mapfile -t sessions < <(c ps -q session | cut -c1-12 | sort)
[ ${#sessions[@]} -eq 2 ] || fail "want 2 session containers, have ${#sessions[@]}"
value="10.0.0.1:$$"
log "pub through session ${sessions[0]}, sub through session ${sessions[1]}"
# Every publisher stops by itself before the overall deadline; -v logs its
# connection events (moves by connection balance) to the container log.
ctl_bg pub-echo --session "${sessions[0]}:9603" pub smoke.echo "$value" --for "$(left)s" -v
eventually 30 "pub to publish" logs_have pub-echo "published "
eventually 30 "sub through the other session to get the value" \
  ctl --session "${sessions[1]}:9603" sub smoke.echo --until "$value" --for 10s
log "7 more publishers, each its own client on a session meta hands out"
pubs=(pub-echo)
for i in 1 2 3 4 5 6 7; do
  ctl_bg "pub-load-$i" --session= pub smoke.load "load-$i" --for "$(left)s" -v
  pubs+=("pub-load-$i")
done
eventually 30 "the 7 values of smoke.load" values "${sessions[1]}" smoke.load 7

log "scaling session to 4 (connection balance every $STRATA_BALANCE_INTERVAL)"
out=$(c up -d --no-recreate --scale session=4 2>&1) || fail "compose up --scale: $out"
healthy 10
eventually 30 "meta to list 4 sessions" members 3 4
mapfile -t added < <(c ps -q session | cut -c1-12 | sort | grep -vxF -e "${sessions[0]}" -e "${sessions[1]}")
[ ${#added[@]} -eq 2 ] || fail "want 2 new session containers, have ${#added[@]}"
eventually 60 "connection balance to move clients onto the new sessions" sessions_busy
ctl members | sed 's/^/  /'

# A subscriber follows smoke.load across the data node's failure: every
# snapshot it is pushed must hold all 7 values.
ctl_bg watch --session= sub smoke.load -o json --for "$(left)s"
eventually 30 "the watcher's first snapshot" logs_have watch '"version"'

victim=$(c ps -q data-2)
[ -n "$victim" ] || fail "no data-2 container"
log "killing data-2 (docker kill ${victim:0:12}); restart policy leaves a killed container down"
docker kill "$victim" >/dev/null
eventually 60 "meta to drop data-2 (dead grace 15s)" members 2 4
eventually 60 "every slot led by a surviving data node" slots_led data-2
eventually 30 "meta-1 ready" get /readyz
healthy 9
# Through the new sessions: they hold none of the publications, so they
# read them from the surviving data nodes.
eventually 10 "smoke.echo still published" values "${added[0]}" smoke.echo 1
eventually 10 "smoke.load still complete" values "${added[1]}" smoke.load 7

log "restarting data-2"
out=$(c start data-2 2>&1) || fail "compose start data-2: $out"
eventually 60 "meta to list data-2 again" members 3 4
healthy 10
eventually 60 "every slot led" slots_led
eventually 10 "smoke.load complete" values "${added[1]}" smoke.load 7

docker stop -t 10 "$project-watch" >/dev/null
snaps=$(docker logs "$project-watch" 2>/dev/null | grep -c '"version"' || true)
short=$(docker logs "$project-watch" 2>/dev/null | grep '"version"' | awk -F'"publisher_id"' 'NF - 1 != 7' | head -n 3)
[ -z "$short" ] || fail "the watcher was pushed snapshots without all 7 values: $short"
log "the watcher's $snaps snapshots all held the 7 values"

log "stopping the publishers (SIGTERM: they unpublish and exit 0)"
docker stop -t 10 "${pubs[@]/#/$project-}" >/dev/null
for name in "${pubs[@]}"; do
  code=$(docker inspect -f '{{.State.ExitCode}}' "$project-$name")
  [ "$code" = 0 ] || fail "$name exited $code: $(docker logs "$project-$name" 2>&1 | tail -n 3)"
  logs_have "$name" "unpublished " >/dev/null || fail "$name did not unpublish: $(docker logs "$project-$name" 2>&1 | tail -n 3)"
done
eventually 15 "smoke.echo to be empty" values "${sessions[0]}" smoke.echo 0
eventually 15 "smoke.load to be empty" values "${added[0]}" smoke.load 0

log "cluster state:"
c ps | sed 's/^/  /'
