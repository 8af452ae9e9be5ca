#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for the tests and benchmarks: a fresh cluster in a temp
# directory, listening on 127.0.0.1 on a free port (and a socket in that directory only),
# password authentication over TCP. As root it runs initdb/pg_ctl as the `postgres` user
# (pg_ctl refuses to run as root).
#
#   eval "$(scripts/pg-test-server.sh start [--fast])"   # exports RECYCLEBIN_TEST_PG_URL and
#                                                        # RECYCLEBIN_TEST_PG_DIR
#   scripts/pg-test-server.sh stop "$RECYCLEBIN_TEST_PG_DIR"
#
# --fast turns off fsync (tests only: a crash loses the cluster, which is thrown away anyway).
# Any failure exits non-zero with the reason on stderr; nothing is skipped.
set -euo pipefail

fail() {
  echo "pg-test-server: $*" >&2
  exit 1
}

pg_bin() {
  local dir
  for dir in "${RECYCLEBIN_PG_BIN:-}" /usr/lib/postgresql/15/bin; do
    if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
      echo "$dir"
      return
    fi
  done
  fail "PostgreSQL 15 server binaries not found (looked in /usr/lib/postgresql/15/bin); install the Debian package postgresql-15 (./scripts/setup.sh does)"
}

as_server_user() {  # runs a command as the user that owns the cluster
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local fast=0
  [ "${1:-}" = "--fast" ] && fast=1
  local bin dir port password
  bin=$(pg_bin)
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    fail "running as root, and there is no 'postgres' user to run the server as (the postgresql-15 package creates it)"
  fi
  dir=$(mktemp -d /tmp/recyclebin-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  printf '%s\n' "$password" >"$dir/pwfile"
  chmod 600 "$dir/pwfile"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/pwfile"
  if ! as_server_user "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
    fail "initdb failed: $(tail -n 5 "$dir/initdb.log")"
  fi
  local settings="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=300"
  if [ "$fast" -eq 1 ]; then
    settings="$settings -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  local attempt
  for attempt in 1 2 3; do  # another process may take the free port before the server binds it
    port=$(free_port)
    if as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port $settings" start >/dev/null 2>&1; then
      break
    fi
    port=""
  done
  [ -n "$port" ] || fail "the server did not start: $(tail -n 5 "$dir/server.log" 2>/dev/null)"
  if ! as_server_user "$bin/../bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAt \
      -c "CREATE DATABASE recyclebin_test" >/dev/null 2>"$dir/createdb.log"; then
    as_server_user "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fail "could not create the test database: $(cat "$dir/createdb.log")"
  fi
  echo "export RECYCLEBIN_TEST_PG_URL='postgresql://postgres:$password@127.0.0.1:$port/recyclebin_test'"
  echo "export RECYCLEBIN_TEST_PG_DIR='$dir'"
}

stop() {
  local dir=${1:?usage: pg-test-server.sh stop DIR}
  case "$dir" in /tmp/recyclebin-pg.*) ;; *) fail "refusing to stop '$dir': not a directory this script made" ;; esac
  [ -d "$dir/data" ] || return 0
  as_server_user "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
    as_server_user "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) fail "usage: pg-test-server.sh start [--fast] | stop DIR" ;;
esac
