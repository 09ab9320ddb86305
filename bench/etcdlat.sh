#!/usr/bin/env bash
# Starts a single-node etcd on loopback (client 127.0.0.1:2379, peer
# 127.0.0.1:2380, default settings otherwise: fsync on, as in production),
# measures put-to-watch latency with bench/etcdlat for one watcher and for
# 1,000 watchers over 100 connections -- the same sizes as bench/pushlat.sh,
# so Strata and etcd can be compared in one sitting -- and stops etcd.
# Installs Debian's etcd-server package first if there is no etcd (needs
# root and apt). Results go to bench/out/. Run it through `make bench-etcd`.
#
# ETCD_TLS=1 serves etcd's clients over TLS with client certificates
# (--client-cert-auth), as Strata's clients are by default: the fair
# comparison for a secure deployment. The certificates are development
# ones from `registryctl certs init` (a CA, a certificate for 127.0.0.1,
# the dev client's), under the run's directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-200}
ETCD_TLS=${ETCD_TLS:-}
GO=${GO:-go}
CLIENT=127.0.0.1:2379
PEER=127.0.0.1:2380
stamp=$(date +%Y%m%d-%H%M%S)
out=bench/out/etcdlat-$stamp.txt
dir=bench/out/etcd-$stamp

if ! command -v etcd >/dev/null; then
  echo "etcd not found: installing Debian's etcd-server package (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server
fi

# in_use reports whether something listens on host:port.
in_use() {
  if command -v ss >/dev/null; then
    [ -n "$(ss -Hltn "sport = :${1##*:}")" ]
  else
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
  fi
}
for a in "$CLIENT" "$PEER"; do
  if in_use "$a"; then
    echo "port ${a##*:} is in use; stop whatever listens there first (an etcd.service the" >&2
    echo "etcd-server package started, say: systemctl stop etcd)" >&2
    exit 1
  fi
done

mkdir -p "$dir"
echo "building bin/etcdlat"
(cd bench/etcdlat && "$GO" build -o ../../bin/etcdlat .)
scheme=http
etcd_tls=() lat_tls=() ctl_tls=() curl_tls=()
if [ -n "$ETCD_TLS" ]; then
  certs=$dir/certs
  "$GO" build -o bin/registryctl ./cmd/registryctl
  bin/registryctl certs init "$certs" --session-nodes etcd >"$dir/certs-init.log"
  echo "ETCD_TLS=1: clients over TLS with client certificates (credentials: $certs/)"
  scheme=https
  etcd_tls=(--cert-file "$certs/session/etcd.pem" --key-file "$certs/session/etcd-key.pem"
    --client-cert-auth --trusted-ca-file "$certs/ca.pem")
  lat_tls=(--cacert "$certs/ca.pem" --cert "$certs/client/dev.pem" --key-file "$certs/client/dev-key.pem")
  ctl_tls=(--cacert "$certs/ca.pem" --cert "$certs/client/dev.pem" --key "$certs/client/dev-key.pem")
  curl_tls=("${ctl_tls[@]}")
fi
version=$(etcd --version | head -1)
echo "starting $version (data and log: $dir/)"
etcd --name bench --data-dir "$dir/data" \
  --listen-client-urls "$scheme://$CLIENT" --advertise-client-urls "$scheme://$CLIENT" ${etcd_tls[@]+"${etcd_tls[@]}"} \
  --listen-peer-urls "http://$PEER" --initial-advertise-peer-urls "http://$PEER" \
  --initial-cluster "bench=http://$PEER" --initial-cluster-state new \
  >"$dir/etcd.log" 2>&1 &
etcd=$!
stop() {
  kill -TERM "$etcd" 2>/dev/null || true
  wait "$etcd" 2>/dev/null || true
  echo "etcd stopped; results in $out"
}
trap stop EXIT

# healthy reports whether etcd answers (and has a leader).
healthy() {
  if command -v etcdctl >/dev/null; then
    ETCDCTL_API=3 etcdctl --endpoints "$scheme://$CLIENT" ${ctl_tls[@]+"${ctl_tls[@]}"} --command-timeout 1s endpoint health >/dev/null 2>&1
  elif command -v curl >/dev/null; then
    curl -fsS -m 1 ${curl_tls[@]+"${curl_tls[@]}"} "$scheme://$CLIENT/health" 2>/dev/null | grep -q '"health":"true"'
  else
    (exec 3<>"/dev/tcp/${CLIENT%:*}/${CLIENT##*:}") 2>/dev/null
  fi
}
ok=
for _ in $(seq 60); do
  healthy && { ok=1; break; }
  kill -0 "$etcd" 2>/dev/null || { echo "etcd did not start; see $dir/etcd.log" >&2; exit 1; }
  sleep 0.5
done
[ -n "$ok" ] || { echo "etcd did not answer in 30s; see $dir/etcd.log" >&2; exit 1; }
server=
command -v curl >/dev/null && server=$(curl -fsS -m 2 ${curl_tls[@]+"${curl_tls[@]}"} "$scheme://$CLIENT/version" 2>/dev/null || true)
echo "etcd is up${server:+: $server}"
{
  echo "# $(date -u) $("$GO" version) $(nproc) CPUs; $version${server:+ $server}; clients over $scheme; data dir $dir/data"
  echo "## one watcher, $((ROUNDS * 5)) rounds"
  bin/etcdlat --endpoints "$CLIENT" ${lat_tls[@]+"${lat_tls[@]}"} --conns 1 --per-conn 1 --rounds $((ROUNDS * 5))
  echo "## 1,000 watchers over 100 connections, $ROUNDS rounds"
  bin/etcdlat --endpoints "$CLIENT" ${lat_tls[@]+"${lat_tls[@]}"} --conns 100 --per-conn 10 --rounds "$ROUNDS"
} 2>&1 | tee "$out"
