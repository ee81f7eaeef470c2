#!/usr/bin/env bash
# Makes real PostgreSQL authentication failures possible on a server that trusts local users
# (see scripts/services.sh): the role probe_auth must give a password over TCP, every other role
# keeps trust. Idempotent: safe to run on every CI run, as root, with PostgreSQL up.
#
#   1. puts `host all probe_auth 127.0.0.1/32 scram-sha-256` (and the same for ::1/128) at the
#      top of pg_hba.conf when absent (pg_hba is first-match, so only probe_auth is affected);
#   2. reloads the cluster;
#   3. creates the LOGIN role probe_auth with the password the tests use (or resets it).
#
# PG_VERSION picks the cluster version (default: the newest under /etc/postgresql).
set -euo pipefail

log() { printf '[postgres-auth] %s\n' "$*"; }

ROLE=probe_auth
PASSWORD=probe-auth-secret
VERSION=${PG_VERSION:-$(ls /etc/postgresql | sort -V | tail -n 1)}
HBA=/etc/postgresql/$VERSION/main/pg_hba.conf
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d postgres)

if [[ ! -f $HBA ]]; then
  log "no $HBA: is PostgreSQL installed?"
  exit 1
fi

rules=(
  "host all $ROLE 127.0.0.1/32 scram-sha-256"
  "host all $ROLE ::1/128 scram-sha-256"
)
missing=()
for rule in "${rules[@]}"; do
  # Compare with runs of blanks squeezed, so a hand-aligned copy of the rule counts as present.
  if ! tr -s ' \t' ' ' <"$HBA" | grep -qxF "$rule"; then
    missing+=("$rule")
  fi
done

if ((${#missing[@]})); then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  {
    echo "# probe tests (scripts/postgres-auth.sh): only $ROLE needs a password"
    printf '%s\n' "${missing[@]}"
    cat "$HBA"
  } >"$tmp"
  # Write through the existing file so its owner and mode (postgres, 0640) stay as they are.
  cat "$tmp" >"$HBA"
  log "added ${#missing[@]} rule(s) at the top of $HBA; reloading"
  pg_ctlcluster --skip-systemctl-redirect "$VERSION" main reload
  sleep 0.5  # the postmaster rereads pg_hba.conf on SIGHUP, asynchronously
else
  log "pg_hba rules for $ROLE already in place"
fi

if [[ $("${PSQL[@]}" -Atc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'") == 1 ]]; then
  "${PSQL[@]}" -c "ALTER ROLE $ROLE WITH LOGIN PASSWORD '$PASSWORD'"
  log "role $ROLE exists; password reset"
else
  "${PSQL[@]}" -c "CREATE ROLE $ROLE WITH LOGIN PASSWORD '$PASSWORD'"
  log "role $ROLE created"
fi
