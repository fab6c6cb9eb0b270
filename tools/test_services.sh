#!/usr/bin/env bash
# The Cassandra and Redis that `make test` runs on: this checkout's own, in .local/test/, on ports of their own,
# so a test run never uses, nor disturbs, services it did not start (another checkout's, `make serve`'s, a system
# Redis on 6379).
#   tools/test_services.sh run -- COMMAND...   start them if needed, then run COMMAND with their ports exported
#   tools/test_services.sh down                stop them
#   tools/test_services.sh env                 print the exports (for a shell: eval "$(tools/test_services.sh env)")
# Ports: TEST_CASSANDRA_PORT, TEST_CASSANDRA_STORAGE_PORT and TEST_REDIS_PORT, or "auto" (the default): free
# ports the kernel picks (its ephemeral range, never 9042, 7000 or 6379), recorded in .local/test/ports.env and
# kept while the services run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LOCAL_DIR="${TEST_LOCAL_DIR:-$ROOT/.local/test}"
PORTS_FILE="$LOCAL_DIR/ports.env"

log() { printf '[test-services] %s\n' "$*" >&2; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

running() { pid_alive "$LOCAL_DIR/cassandra/cassandra.pid" || pid_alive "$LOCAL_DIR/redis/redis.pid"; }

recorded() { sed -n "s/^export $1=//p" "$PORTS_FILE" 2>/dev/null; }

# The ports of the running services while they run; else the requested ones, "auto" ones picked afresh.
choose_ports() {
  local keep=false
  [[ -f "$PORTS_FILE" ]] && running && keep=true
  CASSANDRA_PORT="$(pick "${TEST_CASSANDRA_PORT:-auto}" "$($keep && recorded CASSANDRA_PORT)")"
  CASSANDRA_STORAGE_PORT="$(pick "${TEST_CASSANDRA_STORAGE_PORT:-auto}" "$($keep && recorded CASSANDRA_STORAGE_PORT)")"
  REDIS_PORT="$(pick "${TEST_REDIS_PORT:-auto}" "$($keep && recorded REDIS_PORT)")"
}

pick() {
  local requested="$1" recorded="$2"
  if [[ "$requested" != auto ]]; then echo "$requested"
  elif [[ -n "$recorded" ]]; then echo "$recorded"
  else free_port
  fi
}

write_exports() {
  mkdir -p "$LOCAL_DIR"
  cat >"$PORTS_FILE" <<EXPORTS
export LOCAL_DIR=$LOCAL_DIR
export CASSANDRA_PORT=$CASSANDRA_PORT
export CASSANDRA_STORAGE_PORT=$CASSANDRA_STORAGE_PORT
export REDIS_PORT=$REDIS_PORT
export PLAYER_SESSIONS_CASSANDRA_PORT=$CASSANDRA_PORT
export PLAYER_SESSIONS_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
EXPORTS
}

up() {
  choose_ports
  write_exports
  log "test services in $LOCAL_DIR: Cassandra 127.0.0.1:$CASSANDRA_PORT (storage $CASSANDRA_STORAGE_PORT), Redis 127.0.0.1:$REDIS_PORT"
  CASSANDRA_PORT="$CASSANDRA_PORT" CASSANDRA_STORAGE_PORT="$CASSANDRA_STORAGE_PORT" REDIS_PORT="$REDIS_PORT" \
    "$ROOT/tools/local_services.sh" up
}

case "${1:-}" in
  run)
    shift
    [[ "${1:-}" == "--" ]] && shift
    [[ $# -gt 0 ]] || { echo "usage: $0 run -- COMMAND..." >&2; exit 2; }
    up
    # shellcheck disable=SC1090
    source "$PORTS_FILE"
    exec "$@" ;;
  env)
    up
    cat "$PORTS_FILE" ;;
  down)
    "$ROOT/tools/local_services.sh" down ;;
  *) echo "usage: $0 run -- COMMAND... | env | down" >&2; exit 2 ;;
esac
