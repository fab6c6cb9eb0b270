#!/usr/bin/env bash
# Starts and stops a local Apache Cassandra and Redis of this checkout (`make up` and `make serve` use the ones
# in .local/; `make test` has its own, through tools/test_services.sh).
#   tools/local_services.sh up     start what is not running yet, wait until both answer
#   tools/local_services.sh down   stop what `up` started (by recorded pid), nothing else
#   tools/local_services.sh status
#   tools/local_services.sh credentials-dir   where the Cassandra roles' passwords of this NODES are
#   tools/local_services.sh start-node N   (NODES=3) start node N of the cluster if it is down, wait until it answers
# Data, logs and pids live under $LOCAL_DIR (default: .local/, git-ignored). A port that something else holds
# (another checkout's Cassandra, a system Redis) is never used: `up` says what holds it and stops.
#
# NODES=3 runs a cluster instead of the one node: node i listens on 127.0.0.i with the same ports, its data,
# logs and rendered cassandra.yaml in $LOCAL_DIR/cluster/node<i>/, every node a seed, one datacenter
# (datacenter1, SimpleSnitch). The nodes start together (on a first boot one after another) and `up` returns
# once each answers CQL. The one node and the cluster share 127.0.0.1's ports, so only one of them runs at a
# time; `down` stops whichever runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="${LOCAL_DIR:-$ROOT/.local}"
CASSANDRA_PORT="${CASSANDRA_PORT:-9042}"
CASSANDRA_STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-7000}"
REDIS_PORT="${REDIS_PORT:-6379}"
CASSANDRA_START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-240}"
NODES="${NODES:-1}"
MAX_NODES=3
# Heap per node: the one node gets 2 GiB; a cluster node 1 GiB (three JVMs on two cores and 24 GiB).
if (( NODES > 1 )); then CASSANDRA_HEAP="${CASSANDRA_HEAP:-1G}"; else CASSANDRA_HEAP="${CASSANDRA_HEAP:-2G}"; fi
# A cluster node gives up on a read after 1 s, before the service's 2 s: a coordinator still waiting for a
# replica that died answers ReadTimeout in time for the driver to ask the next coordinator (TimeoutRetryPolicy).
CLUSTER_READ_TIMEOUT=1000ms
SINGLE_NODE_DIR="$LOCAL_DIR/cassandra"
CLUSTER_DIR="$LOCAL_DIR/cluster"
REDIS_DIR="$LOCAL_DIR/redis"

log() { printf '[local-services] %s\n' "$*" >&2; }

# port_open PORT [ADDRESS]: something accepts connections there (ADDRESS defaults to 127.0.0.1).
port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

node_address() { echo "127.0.0.$1"; }

# Node 0 is the one-node Cassandra; nodes 1..NODES are the cluster's.
node_dir() { if (( $1 == 0 )); then echo "$SINGLE_NODE_DIR"; else echo "$CLUSTER_DIR/node$1"; fi; }

node_numbers() { if (( NODES > 1 )); then seq 1 "$NODES"; else echo 0; fi; }

# The addresses the Cassandra of this NODES listens on.
node_host() { if (( $1 == 0 )); then echo 127.0.0.1; else node_address "$1"; fi; }

# shellcheck source=tools/processes.sh
source "$ROOT/tools/processes.sh"

# Who listens on a port, for the message that says what blocks us ("unknown" where ss cannot tell).
port_holder() {
  local pid
  pid="$(ss -ltnpH "sport = :$1 and src ${2:-127.0.0.1}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)"
  if [[ -n "$pid" ]]; then
    echo "pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | tr -s ' ' | cut -c1-120), in $(readlink "/proc/$pid/cwd" 2>/dev/null)"
  else
    echo "unknown process"
  fi
}

refuse_foreign_port() {
  local port="$1" variable="$2" address="${3:-127.0.0.1}"
  log "$address:$port ($variable) is taken by a process this checkout did not start ($(port_holder "$port" "$address"))."
  log "It is not used. Stop it, or give this checkout other ports, e.g."
  log "  CASSANDRA_PORT=$((CASSANDRA_PORT + 20000)) CASSANDRA_STORAGE_PORT=$((CASSANDRA_STORAGE_PORT + 20000)) REDIS_PORT=$((REDIS_PORT + 20000)) make serve"
  return 1
}

# The classpath is resolved by Maven from tools/cassandra/pom.xml; jars stay in ~/.m2, and the resolved
# classpath is cached next to a hash of the pom so that a second `up` does not even start Maven.
cassandra_classpath() {
  mkdir -p "$LOCAL_DIR"
  local cp_file="$LOCAL_DIR/cassandra-classpath.txt" hash_file="$LOCAL_DIR/cassandra-classpath.pom.sha256"
  local pom="$ROOT/tools/cassandra/pom.xml" pom_hash
  pom_hash="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [[ ! -s "$cp_file" || "$(cat "$hash_file" 2>/dev/null)" != "$pom_hash" ]] || ! cassandra_jars_present "$cp_file"; then
    log "resolving org.apache.cassandra:cassandra-all with Maven (cached in ~/.m2)"
    mvn -B -q -f "$pom" dependency:build-classpath -Dmdep.outputFile="$cp_file" >&2
    echo "$pom_hash" >"$hash_file"
  fi
  cat "$cp_file"
}

cassandra_jars_present() {
  local jar
  IFS=':' read -r -a jars <"$1"
  for jar in "${jars[@]}"; do [[ -f "$jar" ]] || return 1; done
}

# The node's cassandra.yaml: the one node uses tools/cassandra/cassandra.yaml as it is; a cluster node gets a
# copy with its own addresses and every node of the cluster as a seed.
node_config() {
  local node="$1"
  if (( node == 0 )); then echo "$ROOT/tools/cassandra/cassandra.yaml"; return; fi
  local dir config seeds
  dir="$(node_dir "$node")" config="$(node_dir "$node")/cassandra.yaml"
  seeds="$(for n in $(seq 1 "$NODES"); do node_address "$n"; done | paste -sd,)"
  sed -e "s/^listen_address: .*/listen_address: $(node_address "$node")/" \
      -e "s/^rpc_address: .*/rpc_address: $(node_address "$node")/" \
      -e "s/- seeds: \"[^\"]*\"/- seeds: \"$seeds\"/" \
      -e "s/^read_request_timeout: .*/read_request_timeout: $CLUSTER_READ_TIMEOUT/" \
      -e "s/^# Single-node Apache Cassandra 5.0.*/# Node $node of a local $NODES-node cluster, rendered by tools\/local_services.sh from tools\/cassandra\/cassandra.yaml./" \
      "$ROOT/tools/cassandra/cassandra.yaml" >"$config.new"
  mv "$config.new" "$config"
  echo "$config"
}

# Starts one node unless its recorded process runs; does not wait.
cassandra_start() {
  local node="$1" dir host pid_file
  dir="$(node_dir "$node")" host="$(node_host "$node")"
  pid_file="$dir/cassandra.pid"
  if pid_alive "$pid_file"; then return 0; fi
  mkdir -p "$dir/data" "$dir/logs"
  local classpath config
  classpath="$(cassandra_classpath)"
  config="$(node_config "$node")"
  local -a jvm_flags
  local skip='^[[:space:]]*(#|$)|^-Xm[sx]'
  # A cluster node that restarts must remember the ring (its peers' tokens) from its last run: started without
  # it, it answered requests and took hints before gossip had told it who owns what, and failed them.
  (( node > 0 )) && skip="$skip|^-Dcassandra.load_ring_state="
  mapfile -t jvm_flags < <(grep -Ev "$skip" "$ROOT/tools/cassandra/jvm.options")
  log "starting cassandra on $host:$CASSANDRA_PORT, heap $CASSANDRA_HEAP (data in $dir)"
  nohup java "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP" "${jvm_flags[@]}" \
    -Dcassandra.config="file://$config" \
    -Dcassandra.storagedir="$dir/data" \
    -Dcassandra.logdir="$dir/logs" \
    -Dlogback.configurationFile="$ROOT/tools/cassandra/logback.xml" \
    -Dcassandra.native_transport_port="$CASSANDRA_PORT" \
    -Dcassandra.storage_port="$CASSANDRA_STORAGE_PORT" \
    -Dcassandra-foreground=yes \
    -cp "$classpath" org.apache.cassandra.service.CassandraDaemon \
    >"$dir/logs/stdout.log" 2>&1 &
  echo $! >"$pid_file"
}

# Waits until the node answers on its CQL port; fails with its last log lines if it exits or takes too long.
cassandra_wait() {
  local node="$1" started="$2" dir host pid_file
  dir="$(node_dir "$node")" host="$(node_host "$node")"
  pid_file="$dir/cassandra.pid"
  until port_open "$CASSANDRA_PORT" "$host"; do
    if ! pid_alive "$pid_file"; then
      log "cassandra ($host) exited during start-up; last lines of its logs:"
      tail -n 40 "$dir/logs/stdout.log" "$dir/logs/system.log" >&2 || true
      return 1
    fi
    if (( SECONDS - started > CASSANDRA_START_TIMEOUT )); then
      log "cassandra did not answer on $host:$CASSANDRA_PORT within ${CASSANDRA_START_TIMEOUT}s"
      tail -n 40 "$dir/logs/system.log" >&2 || true
      return 1
    fi
    sleep 1
  done
  log "cassandra answers on $host:$CASSANDRA_PORT after $((SECONDS - started))s"
}

# A cluster's first boot starts its nodes one after another, each once the one before answers: started
# together, each seed found no peer to gossip with, formed a ring of its own, and the three merged only after
# the roles' set-up had begun, which then failed as "Unavailable" (fresh-clone trials of 2026-12-05). A node
# that has run before remembers the ring, so a restart starts them together.
first_boot() { (( NODES > 1 )) && [[ ! -d "$(node_dir 1)/data/data/system" ]]; }

cassandra_up() {
  local node started=$SECONDS one_by_one=false
  first_boot && one_by_one=true
  for node in $(node_numbers); do
    if pid_alive "$(node_dir "$node")/cassandra.pid" && port_open "$CASSANDRA_PORT" "$(node_host "$node")"; then
      log "cassandra already running (pid $(cat "$(node_dir "$node")/cassandra.pid")) on $(node_host "$node"):$CASSANDRA_PORT"
    else
      cassandra_start "$node"
      if $one_by_one; then cassandra_wait "$node" "$started"; fi
    fi
  done
  $one_by_one || for node in $(node_numbers); do cassandra_wait "$node" "$started"; done
}

# The node's roles live beside its data: the credentials of the one node and of the cluster never mix.
credentials_dir() { if (( NODES > 1 )); then echo "$CLUSTER_DIR/credentials"; else echo "$SINGLE_NODE_DIR/credentials"; fi; }

# Logins are required (PasswordAuthenticator): the first start replaces Cassandra's default superuser by the
# project's administrative role, its password in the credentials folder (player_sessions_local.cassandra_roles).
cassandra_roles() {
  local python="$ROOT/.venv/bin/python" hosts
  [[ -x "$python" ]] || { log "the project's Python environment is missing: run \`make install\` first"; return 1; }
  hosts="$(for node in $(node_numbers); do node_host "$node"; done | paste -sd,)"
  CASSANDRA_CREDENTIALS_DIR="$(credentials_dir)" PLAYER_SESSIONS_CASSANDRA_PORT="$CASSANDRA_PORT" \
    PLAYER_SESSIONS_CASSANDRA_CONTACT_POINTS="$hosts" \
    "$python" -m player_sessions_local.cassandra_roles bootstrap --replicas "$NODES"
}

redis_up() {
  local pid_file="$REDIS_DIR/redis.pid"
  if pid_alive "$pid_file" && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "redis already running (pid $(cat "$pid_file")) on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  if port_open "$REDIS_PORT"; then
    refuse_foreign_port "$REDIS_PORT" REDIS_PORT
    return 1
  fi
  command -v redis-server >/dev/null || { log "redis-server is not installed: run tools/install_prerequisites.sh (make up does)"; return 1; }
  mkdir -p "$REDIS_DIR"
  # A cache only: no RDB snapshots, no append-only file.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --daemonize yes --pidfile "$pid_file" --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log"
  local tries=0
  until redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do
    (( ++tries > 100 )) && { log "redis did not answer on port $REDIS_PORT"; return 1; }
    sleep 0.1
  done
  log "redis answers on 127.0.0.1:$REDIS_PORT"
}

stop_by_pid_file() {
  local name="$1" pid_file="$2" pid waited=0
  if ! pid_alive "$pid_file"; then
    log "$name is not running (no live pid in $pid_file)"
    rm -f "$pid_file"
    return 0
  fi
  pid="$(cat "$pid_file")"
  # SIGCONT first: a test may have left the process frozen with SIGSTOP.
  kill -CONT "$pid" 2>/dev/null || true
  kill "$pid"
  while process_alive "$pid"; do
    (( ++waited > 600 )) && { log "$name (pid $pid) ignored SIGTERM for 60s; sending SIGKILL"; kill -9 "$pid"; }
    sleep 0.1
  done
  rm -f "$pid_file"
  log "$name stopped (pid $pid)"
}

# Every port is checked before any service starts, so nothing is started when one of them is blocked. The one
# node and the cluster use the same ports on 127.0.0.1: while one of them runs, the other is refused by name.
check_ports() {
  if ! pid_alive "$REDIS_DIR/redis.pid" && port_open "$REDIS_PORT"; then
    refuse_foreign_port "$REDIS_PORT" REDIS_PORT
  fi
  (( NODES >= 1 && NODES <= MAX_NODES )) || { log "NODES=$NODES: 1 to $MAX_NODES nodes"; return 1; }
  local other
  if (( NODES > 1 )); then other="$SINGLE_NODE_DIR"; else other="$CLUSTER_DIR/node1"; fi
  if pid_alive "$other/cassandra.pid"; then
    log "this checkout's $( ((NODES > 1)) && echo one-node Cassandra || echo Cassandra cluster ) runs (pid $(cat "$other/cassandra.pid")) on the same ports: run \`tools/local_services.sh down\` (make down) first"
    return 1
  fi
  local node port variable
  for node in $(node_numbers); do
    pid_alive "$(node_dir "$node")/cassandra.pid" && continue
    for variable in CASSANDRA_PORT CASSANDRA_STORAGE_PORT; do
      port="${!variable}"
      if port_open "$port" "$(node_host "$node")"; then refuse_foreign_port "$port" "$variable" "$(node_host "$node")"; fi
    done
  done
}

# Every Cassandra of this checkout that runs: the one node and the cluster's nodes, whatever NODES says.
cassandra_down() {
  local pid_file
  for pid_file in "$SINGLE_NODE_DIR/cassandra.pid" "$CLUSTER_DIR"/node*/cassandra.pid; do
    [[ -f "$pid_file" ]] || continue
    stop_by_pid_file "cassandra ($(basename "$(dirname "$pid_file")"))" "$pid_file"
  done
}

cassandra_status() {
  local node any=false
  for node in 0 $(seq 1 "$MAX_NODES"); do
    pid_alive "$(node_dir "$node")/cassandra.pid" || continue
    any=true
    if port_open "$CASSANDRA_PORT" "$(node_host "$node")"; then
      echo "cassandra: up on $(node_host "$node"):$CASSANDRA_PORT ($(basename "$(node_dir "$node")"))"
    else
      echo "cassandra: starting or not answering on $(node_host "$node"):$CASSANDRA_PORT ($(basename "$(node_dir "$node")"))"
    fi
  done
  $any || echo "cassandra: down"
}

case "${1:-}" in
  up) check_ports; redis_up; cassandra_up; cassandra_roles ;;
  credentials-dir) credentials_dir ;;
  start-node)
    node="${2:-}"
    (( NODES > 1 )) && [[ "$node" =~ ^[1-9]$ ]] && (( node <= NODES )) || { log "usage: NODES=3 $0 start-node 1..$NODES"; exit 2; }
    cassandra_start "$node"
    cassandra_wait "$node" "$SECONDS" ;;
  down)
    stop_by_pid_file redis "$REDIS_DIR/redis.pid"
    cassandra_down ;;
  status)
    cassandra_status
    if port_open "$REDIS_PORT"; then echo "redis: up on $REDIS_PORT"; else echo "redis: down"; fi ;;
  *) echo "usage: $0 up|down|status|start-node N|credentials-dir" >&2; exit 2 ;;
esac
