#!/usr/bin/env bash
# Everything the test suite needs beyond the Python packages, prepared idempotently: `make test`
# runs this first, and so does CI (.ci/run, through `make test`). Safe to run again at any time.
#
#   1. PostgreSQL, MariaDB, Redis and Mosquitto: started when installed but not answering
#      (this project's machines come with them running; nothing is installed for them here);
#   2. Debian's etcd-server, influxdb, chromium, zookeeper, dnsmasq-base, memcached and
#      prometheus: installed when missing (one apt-get update);
#   3. the PostgreSQL role probe_auth with a password and its pg_hba rules (postgres-auth.sh);
#   4. etcd (127.0.0.1:2379) and InfluxDB (127.0.0.1:8086) started on loopback
#      (start-etcd-influxdb.sh);
#   5. the local user probe-ssh with a known password, for the ssh and host probers' tests
#      (they start private sshd instances on loopback; nothing listens on port 22).
#
# A step that cannot be done here (not root, no apt-get, a service not installed) is reported
# with what to do, and the tests that need it are skipped with that reason. With
# PROBE_TEST_REQUIRE_SERVICES=1 (CI) any such step is a failure: CI must never pass by skipping.
set -uo pipefail
cd "$(dirname "$0")"

log() { printf '[services] %s\n' "$*"; }
STRICT=${PROBE_TEST_REQUIRE_SERVICES:-0}
problems=()

answers() {  # answers HOST PORT: true when something accepts a TCP connection there
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_port() {  # wait_port PORT NAME SECONDS
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    answers 127.0.0.1 "$1" && return 0
    sleep 0.2
  done
  problems+=("$2 does not answer on 127.0.0.1:$1")
  return 1
}

is_root() { [[ $(id -u) == 0 ]]; }

# 1. The shared services this kind of machine starts; restarted when they stopped.
start_shared() {
  if command -v pg_ctlcluster >/dev/null && ! answers 127.0.0.1 5432; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  fi
  if [[ -x /usr/sbin/mariadbd ]] && ! answers 127.0.0.1 3306; then
    log "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  fi
  if command -v redis-server >/dev/null && ! answers 127.0.0.1 6379; then
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
  if command -v mosquitto >/dev/null && ! answers 127.0.0.1 1883; then
    log "starting Mosquitto"
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  fi
  wait_port 5432 PostgreSQL 60
  wait_port 3306 MariaDB 60
  wait_port 6379 Redis 30
  wait_port 1883 Mosquitto 30
  return 0
}

# 2. Debian packages the suite uses that this kind of machine does not come with.
install_missing() {
  local missing=()
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v influxd >/dev/null || missing+=(influxdb)
  command -v chromium >/dev/null || missing+=(chromium)
  # ZooKeeper (Java): the zookeeper prober's tests start a private server from its jar.
  [[ -f /usr/share/java/zookeeper.jar ]] || missing+=(zookeeper)
  # dnsmasq-base: the binary alone (no system service); the dns tests start private ones.
  command -v dnsmasq >/dev/null || [[ -x /usr/sbin/dnsmasq ]] || missing+=(dnsmasq-base)
  [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
  # memcached: the memcache prober's tests start private ones on free ports (the package's
  # own service, where systemd starts it, is never used).
  command -v memcached >/dev/null || missing+=(memcached)
  # Prometheus: the Grafana dashboard's test (tests/test_grafana.py) starts a private one on a
  # free loopback port. Without its recommends (node-exporter and its timers, not used).
  local lean=()
  command -v prometheus >/dev/null || lean+=(prometheus)
  ((${#missing[@]} + ${#lean[@]})) || return 0
  if ! is_root || ! command -v apt-get >/dev/null; then
    ((${#missing[@]})) &&
      problems+=("not installed: ${missing[*]} (as root: apt-get install ${missing[*]})")
    ((${#lean[@]})) &&
      problems+=("not installed: ${lean[*]} (as root: apt-get install --no-install-recommends ${lean[*]})")
    return 0
  fi
  log "installing ${missing[*]} ${lean[*]}"
  if ! apt-get update -qq; then
    problems+=("apt-get update failed")
    return 0
  fi
  if ((${#missing[@]})) && ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${missing[@]}" >/dev/null; then
    problems+=("apt-get install ${missing[*]} failed")
  fi
  if ((${#lean[@]})); then
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${lean[@]}" >/dev/null; then
      quiet_system_prometheus
    else
      problems+=("apt-get install ${lean[*]} failed")
    fi
  fi
}

# The package enables a system Prometheus (on :9090, every interface, scraping itself): stopped
# and disabled right after we installed it, since the tests start their own. One that was
# there before is not ours to touch.
quiet_system_prometheus() {
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/prometheus ]]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}

# 3. A password-only PostgreSQL role, for real authentication failures.
postgres_auth() {
  if ! command -v psql >/dev/null || ! answers 127.0.0.1 5432; then
    return 0  # reported by step 1 when the server is installed
  fi
  if ! is_root; then
    problems+=("the PostgreSQL role probe_auth needs root once: sudo bash scripts/postgres-auth.sh")
    return 0
  fi
  bash ./postgres-auth.sh || problems+=("scripts/postgres-auth.sh failed")
}

# 4. etcd and InfluxDB on loopback.
etcd_influxdb() {
  if ! command -v etcd >/dev/null || ! command -v influxd >/dev/null; then
    return 0  # reported by step 2
  fi
  bash ./start-etcd-influxdb.sh || problems+=("etcd or InfluxDB did not start")
}

# 5. A login for the ssh/host tests' private sshd: password auth needs a real user (root's
# password is not ours to set). Its password is in tests/support/sshd.py, it can do nothing
# root cannot, and no sshd of ours listens beyond 127.0.0.1.
ssh_user() {
  [[ -x /usr/sbin/sshd ]] || return 0  # reported by step 2
  if ! is_root; then
    problems+=("the user probe-ssh needs root once: sudo bash scripts/services.sh")
    return 0
  fi
  id probe-ssh >/dev/null 2>&1 || useradd --create-home --shell /bin/sh probe-ssh ||
    { problems+=("useradd probe-ssh failed"); return 0; }
  echo 'probe-ssh:probe-ssh-test-password' | chpasswd || problems+=("chpasswd probe-ssh failed")
  # sshd's privilege separation directory (systemd creates it where systemd runs sshd).
  mkdir -p /run/sshd && chmod 755 /run/sshd
}

start_shared
install_missing
postgres_auth
etcd_influxdb
ssh_user

if ((${#problems[@]})); then
  for p in "${problems[@]}"; do log "NOT READY: $p"; done
  if [[ $STRICT == 1 ]]; then
    log "PROBE_TEST_REQUIRE_SERVICES=1: every service must be ready"
    exit 1
  fi
  log "the tests that need these are skipped, each with its reason"
else
  log "every service the tests use is ready"
fi
exit 0
