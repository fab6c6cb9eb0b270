#!/usr/bin/env bash
# The Cassandra and Redis that `make test` runs on: this checkout's own, in .local/test/, on ports of their own,
# so a test run never uses, nor disturbs, services it did not start (another checkout's, `make serve`'s, a system
# Redis on 6379).
#   tools/test_services.sh run -- COMMAND...   start them if needed, then run COMMAND with their ports exported
#   tools/test_services.sh down                stop them (the one node's and the cluster's)
#   tools/test_services.sh stop                stop only this kind's (TEST_NODES): frees the machine for the other
#   tools/test_services.sh env                 print the exports (for a shell: eval "$(tools/test_services.sh env)")
# Ports: TEST_CASSANDRA_PORT, TEST_CASSANDRA_STORAGE_PORT and TEST_REDIS_PORT, or "auto" (the default): free
# ports the kernel picks (its ephemeral range, never 9042, 7000 or 6379), recorded in .local/test/ports.env and
# kept while the services run.
# TEST_NODES=3: a three-node cluster instead (tests/cluster), in .local/test-cluster/, on ports free on
# 127.0.0.1, .2 and .3 alike; the exports then name the three contact points and three replicas.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export NODES="${TEST_NODES:-1}"
if (( NODES > 1 )); then DEFAULT_DIR="$ROOT/.local/test-cluster"; else DEFAULT_DIR="$ROOT/.local/test"; fi
export LOCAL_DIR="${TEST_LOCAL_DIR:-$DEFAULT_DIR}"
PORTS_FILE="$LOCAL_DIR/ports.env"

log() { printf '[test-services] %s\n' "$*" >&2; }

# shellcheck source=tools/processes.sh
source "$ROOT/tools/processes.sh"

# A port the kernel picks on 127.0.0.1 that is free on every node's address too.
free_port() {
  python3 - "$NODES" <<'PYTHON'
import socket, sys
nodes = int(sys.argv[1])
while True:
    first = socket.socket()
    first.bind(("127.0.0.1", 0))
    port = first.getsockname()[1]
    try:
        for node in range(2, nodes + 1):
            with socket.socket() as other:
                other.bind((f"127.0.0.{node}", port))
    except OSError:
        first.close()
        continue
    print(port)
    break
PYTHON
}

running() {
  local pid_file
  for pid_file in "$LOCAL_DIR/cassandra/cassandra.pid" "$LOCAL_DIR"/cluster/node*/cassandra.pid "$LOCAL_DIR/redis/redis.pid"; do
    pid_alive "$pid_file" && return 0
  done
  return 1
}

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
  local contact_points strategy=SimpleStrategy
  contact_points="$(seq -s, -f '127.0.0.%g' 1 "$NODES")"
  (( NODES > 1 )) && strategy=NetworkTopologyStrategy
  cat >"$PORTS_FILE" <<EXPORTS
export LOCAL_DIR=$LOCAL_DIR
export NODES=$NODES
export CASSANDRA_PORT=$CASSANDRA_PORT
export CASSANDRA_STORAGE_PORT=$CASSANDRA_STORAGE_PORT
export REDIS_PORT=$REDIS_PORT
export PLAYER_SESSIONS_CASSANDRA_PORT=$CASSANDRA_PORT
export PLAYER_SESSIONS_CASSANDRA_CONTACT_POINTS=$contact_points
export PLAYER_SESSIONS_REPLICATION_STRATEGY=$strategy
export PLAYER_SESSIONS_REPLICATION_FACTOR=$NODES
export PLAYER_SESSIONS_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export CASSANDRA_CREDENTIALS_DIR=$("$ROOT/tools/local_services.sh" credentials-dir)
EXPORTS
}

up() {
  choose_ports
  write_exports
  log "test services in $LOCAL_DIR: Cassandra ($NODES node(s) from 127.0.0.1):$CASSANDRA_PORT (storage $CASSANDRA_STORAGE_PORT), Redis 127.0.0.1:$REDIS_PORT"
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
  stop)
    "$ROOT/tools/local_services.sh" down ;;
  down)
    # Both kinds: the one node's and the cluster's.
    for dir in "${TEST_LOCAL_DIR:-$ROOT/.local/test}" "$ROOT/.local/test-cluster"; do
      if [[ -d "$dir" ]]; then LOCAL_DIR="$dir" "$ROOT/tools/local_services.sh" down; fi
    done ;;
  *) echo "usage: $0 run -- COMMAND... | env | stop | down" >&2; exit 2 ;;
esac
