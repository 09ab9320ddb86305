#!/usr/bin/env bash
# Starts a local cluster of real processes (deploy/local/run.sh: 3 meta,
# 3 data, 2 sessions on loopback), measures publish-to-push latency with
# bench/pushlat for one subscriber and for 1,000 subscribers over 100
# connections, and stops the cluster. Results go to bench/out/. Run it
# through `make bench-pushlat` (which builds the binaries first). The
# cluster uses run.sh's fixed ports, so nothing else may be using them
# (a `make run` cluster, say).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-200}
stamp=$(date +%Y%m%d-%H%M%S)
out=bench/out/pushlat-$stamp.txt
run=bench/out/pushlat-$stamp-cluster
mkdir -p bench/out
echo "starting a local cluster (logs: $run/)"
RUN=$run ./deploy/local/run.sh >"$run.log" 2>&1 &
cluster=$!
stop() {
  kill -TERM "$cluster" 2>/dev/null || true
  wait "$cluster" 2>/dev/null || true
  echo "cluster stopped; results in $out"
}
trap stop EXIT
for _ in $(seq 120); do
  grep -q "Strata is running" "$run.log" 2>/dev/null && break
  kill -0 "$cluster" 2>/dev/null || { echo "the cluster did not start; see $run.log" >&2; exit 1; }
  sleep 0.5
done
grep -q "Strata is running" "$run.log" || { echo "the cluster did not start in 60s; see $run.log" >&2; exit 1; }
go build -o bin/pushlat ./bench/pushlat
# The cluster runs with TLS unless INSECURE=1 (run.sh's switch); the
# clients then use its dev identity.
creds=(--credentials "$run/certs")
[ -z "${INSECURE:-}" ] || creds=()
{
  echo "# $(date -u) $(go version) $(nproc) CPUs"
  echo "## one subscriber (on the other session), $((ROUNDS * 5)) rounds"
  bin/pushlat "${creds[@]}" --conns 1 --per-conn 1 --rounds $((ROUNDS * 5))
  echo "## 1,000 subscribers over 100 connections, $ROUNDS rounds"
  bin/pushlat "${creds[@]}" --conns 100 --per-conn 10 --rounds "$ROUNDS"
} 2>&1 | tee "$out"
