#!/usr/bin/env bash
# Strata against etcd side by side, as docs/architecture.md reports them:
# PAIRS times (default 5), one after the other, the session package's
# in-process push benchmarks (one subscriber on another session, 1,000
# rounds; 1,000 subscribers over 100 connections, 200 rounds) and the same
# two measurements against a single-node etcd (bench/etcdlat.sh). Each pair
# gets the p99 ratio Strata / etcd; the summary gives the median ratio and
# in how many pairs Strata's p99 was at or below etcd's. Alternating pairs,
# not one long run each, so that the machine's drift (a shared VM's speed
# changes over minutes) falls on both sides alike.
#
# WITH_PROCS=1 adds bench/pushlat.sh (the same measurements against a local
# cluster of real processes) to each pair. Results and each run's log go to
# bench/out/. Run it through `make bench-compare`.
#
# TLS=1 adds the cost of security: each pair also runs the in-process
# benchmarks on a plaintext cluster (STRATA_BENCH_INSECURE=1; the default
# one has TLS, identities and encrypted gossip on every link, as deployed)
# and reports the p99 ratio with TLS / without (rows one-tls, fanout-tls).
#
# ETCD_TLS=1 runs etcd with TLS and client certificates on its client
# port (bench/etcdlat.sh), as Strata's links are by default: the like-for-
# like comparison. Without it etcd is plaintext and Strata is not.
#
# ONE_ROUNDS (default 1000) and FANOUT_ROUNDS (default 200) set the
# benchmarks' rounds. A 1,000-round p99 is the tenth-worst sample; more
# rounds steady it where a small difference is the question (TLS or not),
# but etcd's side (bench/etcdlat.sh) keeps its own count.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-5}
WITH_PROCS=${WITH_PROCS:-}
TLS=${TLS:-}
ONE_ROUNDS=${ONE_ROUNDS:-1000}
FANOUT_ROUNDS=${FANOUT_ROUNDS:-200}
GO=${GO:-go}
stamp=$(date +%Y%m%d-%H%M%S)
out=bench/out/compare-$stamp.txt
logs=bench/out/compare-$stamp
mkdir -p "$logs" bin
echo "building the session package's benchmarks (bin/session-bench.test)"
"$GO" test -c -o bin/session-bench.test ./internal/session/

# metric prints the value before unit on the benchmark line of log.
# strata_benches LOG: the two in-process benchmarks, into LOG.
strata_benches() {
  (cd internal/session && ../../bin/session-bench.test -test.run '^$' \
    -test.bench 'BenchmarkPush_OneSubscriberOnAnotherSession$' -test.benchtime "${ONE_ROUNDS}x" &&
    ../../bin/session-bench.test -test.run '^$' \
      -test.bench 'BenchmarkPush_FanOut1000SubscribersOver100Conns$' -test.benchtime "${FANOUT_ROUNDS}x") \
    >"$1" 2>&1 || { echo "the Strata benchmarks failed; see $1" >&2; exit 1; }
}

metric() { awk -v b="$2" -v u="$3" '$1 ~ "^"b"-" { for (i = 2; i < NF; i++) if ($(i+1) == u) print $i }' "$1"; }
# deliveries prints p50 and p99 of the n-th "deliveries" line of log.
deliveries() {
  awk -v n="$2" '/^deliveries/ { if (++k == n) for (i = 1; i < NF; i++) { if ($i == "p50") a = $(i+1); if ($i == "p99") b = $(i+1) } } END { print a, b }' "$1"
}

# row appends one pair's line for work: Strata's p50 and p99, etcd's, and
# the p99 ratio; a missing figure (a run that printed none) ends the script.
row() {
  if [ -z "$3" ] || [ -z "$5" ]; then
    echo "pair $i: a run gave no figure for $1; see $logs/" >&2
    exit 1
  fi
  printf '%-5s %-13s %-22s %-22s %s\n' "$i" "$1" "$2/$3" "$4/$5" \
    "$(awk -v s="$3" -v e="$5" 'BEGIN { printf "%.2f", s / e }')" >>"$out"
}

{
  echo "# $(date -u) $("$GO" version) $(nproc) CPUs; $PAIRS pairs; Strata rounds: one $ONE_ROUNDS, fanout $FANOUT_ROUNDS; etcd clients over $([ -n "${ETCD_TLS:-}" ] && echo TLS with client certificates || echo plaintext)"
  echo "# p50 and p99 in ms; ratio = Strata p99 / etcd p99 (rows *-tls: with TLS / without, in the etcd column's place)"
  printf '%-5s %-13s %-22s %-22s %s\n' pair work "strata p50/p99" "etcd p50/p99" ratio
} >"$out"
for i in $(seq "$PAIRS"); do
  # With TLS=1, the plaintext run goes first in even pairs, so that drift
  # within a pair falls on both sides alike.
  if [ -n "$TLS" ] && [ $((i % 2)) -eq 0 ]; then
    echo "pair $i/$PAIRS: Strata in-process without TLS (log: $logs/plain-$i.txt)"
    STRATA_BENCH_INSECURE=1 strata_benches "$logs/plain-$i.txt"
  fi
  echo "pair $i/$PAIRS: Strata in-process (log: $logs/strata-$i.txt)"
  strata_benches "$logs/strata-$i.txt"
  if [ -n "$TLS" ] && [ $((i % 2)) -eq 1 ]; then
    echo "pair $i/$PAIRS: Strata in-process without TLS (log: $logs/plain-$i.txt)"
    STRATA_BENCH_INSECURE=1 strata_benches "$logs/plain-$i.txt"
  fi
  echo "pair $i/$PAIRS: etcd (log: $logs/etcd-$i.txt)"
  ./bench/etcdlat.sh >"$logs/etcd-$i.txt" 2>&1 || { echo "the etcd run failed; see $logs/etcd-$i.txt" >&2; exit 1; }
  if [ -n "$WITH_PROCS" ]; then
    echo "pair $i/$PAIRS: Strata, real processes (log: $logs/procs-$i.txt)"
    ./bench/pushlat.sh >"$logs/procs-$i.txt" 2>&1 || { echo "the real-process run failed; see $logs/procs-$i.txt" >&2; exit 1; }
  fi
  for w in one fanout; do
    if [ $w = one ]; then b=BenchmarkPush_OneSubscriberOnAnotherSession n=1; else b=BenchmarkPush_FanOut1000SubscribersOver100Conns n=2; fi
    s50=$(metric "$logs/strata-$i.txt" $b p50-ms) s99=$(metric "$logs/strata-$i.txt" $b p99-ms)
    read -r e50 e99 < <(deliveries "$logs/etcd-$i.txt" $n)
    row "$w" "$s50" "$s99" "$e50" "$e99"
    if [ -n "$TLS" ]; then
      row "$w-tls" "$s50" "$s99" "$(metric "$logs/plain-$i.txt" $b p50-ms)" "$(metric "$logs/plain-$i.txt" $b p99-ms)"
    fi
    if [ -n "$WITH_PROCS" ]; then
      read -r p50 p99 < <(deliveries "$logs/procs-$i.txt" $n)
      row "$w-procs" "$p50" "$p99" "$e50" "$e99"
    fi
  done
  rows=1
  [ -z "$WITH_PROCS" ] || rows=$((rows + 1))
  [ -z "$TLS" ] || rows=$((rows + 1))
  tail -n "$((2 * rows))" "$out"
done
echo "# summary: median p99 ratio, and pairs with Strata's p99 at or below etcd's" >>"$out"
for w in one fanout one-procs fanout-procs one-tls fanout-tls; do
  awk -v w="$w" '$2 == w { print $5 }' "$out" | sort -n | awk -v w="$w" '
    { r[++n] = $1; if ($1 <= 1) le++ }
    END { if (n == 0) exit; m = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
      printf "%-13s median ratio %.2f; at or below etcd in %d of %d pairs\n", w, m, le + 0, n }' >>"$out"
done
echo
cat "$out"
echo "results in $out (each run's log under $logs/)"
