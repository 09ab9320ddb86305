#!/usr/bin/env bash
# Usage: wait-healthy.sh PROJECT [TIMEOUT_SECONDS] [MIN_HEALTHY]
#
# Waits until every running container of compose project PROJECT reports
# healthy, and at least MIN_HEALTHY (default 1) do. Prints progress; on
# timeout prints each container's state and the last health check output,
# and exits 1. Works with docker-compose v1 and the docker compose plugin
# alike (both label containers with the project name).
set -euo pipefail

project=${1:?usage: wait-healthy.sh PROJECT [TIMEOUT_SECONDS] [MIN_HEALTHY]}
timeout=${2:-120}
min=${3:-1}

# states prints "name state health" per service container of the project.
states() {
  local ids
  ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.oneoff=False")
  [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086 # one ID per word
  docker inspect -f '{{slice .Name 1}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' $ids
}

deadline=$((SECONDS + timeout))
last=""
while :; do
  out=$(states)
  running=$(awk '$2 == "running"' <<<"$out" | wc -l)
  healthy=$(awk '$2 == "running" && $3 == "healthy"' <<<"$out" | wc -l)
  summary="$healthy/$running running containers healthy"
  if [ "$healthy" -eq "$running" ] && [ "$healthy" -ge "$min" ]; then
    echo "  $summary"
    exit 0
  fi
  if [ "$summary" != "$last" ]; then
    echo "  $summary (want all, at least $min)..."
    last=$summary
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "not healthy after ${timeout}s:" >&2
    sed 's/^/    /' <<<"$out" >&2
    for name in $(awk '$3 != "healthy" {print $1}' <<<"$out"); do
      echo "  last health check of $name:" >&2
      docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.ExitCode}}: {{.Output}}{{"\n"}}{{end}}{{end}}' "$name" |
        grep -v '^[[:space:]]*$' | tail -n 2 | sed 's/^/    /' >&2 || true
    done
    exit 1
  fi
  sleep 1
done
