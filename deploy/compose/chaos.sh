#!/usr/bin/env bash
# make chaos-compose: make chaos against the compose cluster. Starts a
# throwaway project (3 meta, 3 data, 3 sessions, TLS, JSON logs), waits
# until every container is healthy, then runs bin/chaos --compose in a
# container of the image on the project's network, with the Docker
# Engine's socket and the operator credentials mounted: it drives the
# load through pkg/client from there and injects faults through the
# Engine API (docker kill, pause/unpause, stop+start, network disconnect
# of a session), checks the history and writes its report and every
# container's log to bench/out/chaos-compose-<seed>/. The project is torn
# down however it ends (KEEP=1 leaves it). Environment: STRATA_IMAGE,
# COMPOSE (as compose-smoke), DURATION (2m), SEED, FAULTS (all; the cuts
# of one link are skipped: a container is on the network or off it),
# CHAOS_FLAGS (more bin/chaos flags).
set -euo pipefail
cd "$(dirname "$0")/../.."

export STRATA_IMAGE=${STRATA_IMAGE:-strata:dev}
unset STRATA_INSECURE STRATA_CREDENTIALS STRATA_ENROLL_TOKEN_FILE STRATA_ADMIN_TOKEN
export STRATA_HEALTH_INTERVAL=${STRATA_HEALTH_INTERVAL:-2s}
export STRATA_LOG_FORMAT=json
if [ -z "${COMPOSE:-}" ]; then
  if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE=docker-compose; fi
fi
read -ra compose_cmd <<<"$COMPOSE"
project="stratachaos$$"
file=deploy/compose/docker-compose.yml
seed=${SEED:-$(( $(date +%s%N) % 1000000000 ))}
out="bench/out/chaos-compose-$seed"
mkdir -p "$out"
start=$SECONDS
log() { printf '[chaos-compose %3ds] %s\n' $((SECONDS - start)) "$*"; }

cleanup() {
  local rc=$?
  if [ "${KEEP:-}" = 1 ]; then
    log "KEEP=1: project $project left running (${compose_cmd[*]} -f $file -p $project down -v)"
  else
    "${compose_cmd[@]}" -f "$file" -p "$project" down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  log "report and logs: $out/ (exit $rc)"
  exit $rc
}
trap cleanup EXIT

log "starting compose project $project (3 meta, 3 data, 3 sessions)"
"${compose_cmd[@]}" -f "$file" -p "$project" up -d --scale session=3 >/dev/null
deploy/compose/wait-healthy.sh "$project" 240 9
log "cluster healthy; running chaos (seed $seed, duration ${DURATION:-2m}, faults ${FAULTS:-all})"
# shellcheck disable=SC2086 # CHAOS_FLAGS is a list of flags
docker run --rm --name "${project}-chaos" --network "${project}_default" --user 0 \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -v "${project}_operator:/credentials:ro" \
  -v "$PWD/$out:/out" \
  "$STRATA_IMAGE" chaos --compose "$project" --credentials /credentials \
  --seed "$seed" --duration "${DURATION:-2m}" --faults "${FAULTS:-all}" --out /out ${CHAOS_FLAGS:-}
