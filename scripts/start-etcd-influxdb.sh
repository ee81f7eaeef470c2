#!/usr/bin/env bash
# Make sure etcd (127.0.0.1:2379) and InfluxDB (127.0.0.1:8086) answer on loopback, for the
# etcd and influxdb prober tests. Idempotent: starts a server only when nothing answers on its
# port, then waits for both ports (bounded) and fails naming the one that did not come up.
# Debian's etcd-server and influxdb must be installed (scripts/services.sh does that).
#
# Each server started here runs detached (setsid) from a fresh temporary directory holding its
# data, config and log; nothing is kept between runs. See scripts/services.sh.
set -euo pipefail

WAIT_SECONDS=${WAIT_SECONDS:-60}

log() { printf '[etcd-influxdb] %s\n' "$*"; }

answers() {  # answers HOST PORT: true when something accepts a TCP connection there
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_port() {  # wait_port HOST PORT NAME LOGFILE
  local host=$1 port=$2 name=$3 logfile=$4 i
  for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
    if answers "$host" "$port"; then
      log "$name answers on $host:$port"
      return 0
    fi
    sleep 0.2
  done
  log "ERROR: $name did not answer on $host:$port within ${WAIT_SECONDS}s"
  if [[ -n $logfile && -f $logfile ]]; then
    log "last lines of $logfile:"
    tail -n 20 "$logfile" >&2 || true
  fi
  return 1
}

etcd_log=""
influx_log=""

start_etcd() {
  if answers 127.0.0.1 2379; then
    log "etcd already answers on 127.0.0.1:2379"
    return 0
  fi
  local dir
  dir=$(mktemp -d /tmp/probe-etcd.XXXXXX)
  etcd_log="$dir/etcd.log"
  log "starting etcd in $dir"
  setsid etcd --data-dir "$dir/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380 \
    </dev/null >"$etcd_log" 2>&1 &
}

start_influxdb() {
  if answers 127.0.0.1 8086; then
    log "InfluxDB already answers on 127.0.0.1:8086"
    return 0
  fi
  local dir
  dir=$(mktemp -d /tmp/probe-influxdb.XXXXXX)
  influx_log="$dir/influx.log"
  cat >"$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:8088"
[meta]
  dir = "$dir/influx/meta"
[data]
  dir = "$dir/influx/data"
  wal-dir = "$dir/influx/wal"
[http]
  bind-address = "127.0.0.1:8086"
CONF
  log "starting InfluxDB in $dir"
  setsid influxd -config "$dir/influxdb.conf" </dev/null >"$influx_log" 2>&1 &
}

start_etcd
start_influxdb
status=0
wait_port 127.0.0.1 2379 etcd "$etcd_log" || status=1
wait_port 127.0.0.1 8086 InfluxDB "$influx_log" || status=1
exit "$status"
