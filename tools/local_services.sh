#!/usr/bin/env bash
# Starts and stops a local Apache Cassandra and Redis of this checkout (`make up` and `make serve` use the ones
# in .local/; `make test` has its own, through tools/test_services.sh).
#   tools/local_services.sh up     start what is not running yet, wait until both answer
#   tools/local_services.sh down   stop what `up` started (by recorded pid), nothing else
#   tools/local_services.sh status
# Data, logs and pids live under $LOCAL_DIR (default: .local/, git-ignored). A port that something else holds
# (another checkout's Cassandra, a system Redis) is never used: `up` says what holds it and stops.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="${LOCAL_DIR:-$ROOT/.local}"
CASSANDRA_PORT="${CASSANDRA_PORT:-9042}"
CASSANDRA_STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-7000}"
REDIS_PORT="${REDIS_PORT:-6379}"
CASSANDRA_START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-240}"
CASSANDRA_HOME_DIR="$LOCAL_DIR/cassandra"
REDIS_DIR="$LOCAL_DIR/redis"

log() { printf '[local-services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Who listens on a port, for the message that says what blocks us ("unknown" where ss cannot tell).
port_holder() {
  local pid
  pid="$(ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)"
  if [[ -n "$pid" ]]; then
    echo "pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | tr -s ' ' | cut -c1-120), in $(readlink "/proc/$pid/cwd" 2>/dev/null)"
  else
    echo "unknown process"
  fi
}

refuse_foreign_port() {
  local port="$1" variable="$2"
  log "127.0.0.1:$port ($variable) is taken by a process this checkout did not start ($(port_holder "$port"))."
  log "It is not used. Stop it, or give this checkout other ports, e.g."
  log "  CASSANDRA_PORT=$((CASSANDRA_PORT + 20000)) CASSANDRA_STORAGE_PORT=$((CASSANDRA_STORAGE_PORT + 20000)) REDIS_PORT=$((REDIS_PORT + 20000)) make serve"
  return 1
}

# The classpath is resolved by Maven from tools/cassandra/pom.xml; jars stay in ~/.m2, and the resolved
# classpath is cached next to a hash of the pom so that a second `up` does not even start Maven.
cassandra_classpath() {
  local cp_file="$CASSANDRA_HOME_DIR/classpath.txt" hash_file="$CASSANDRA_HOME_DIR/classpath.pom.sha256"
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

cassandra_up() {
  local pid_file="$CASSANDRA_HOME_DIR/cassandra.pid"
  if pid_alive "$pid_file" && port_open "$CASSANDRA_PORT"; then
    log "cassandra already running (pid $(cat "$pid_file")) on 127.0.0.1:$CASSANDRA_PORT"
    return 0
  fi
  if ! pid_alive "$pid_file" && port_open "$CASSANDRA_PORT"; then
    refuse_foreign_port "$CASSANDRA_PORT" CASSANDRA_PORT
    return 1
  fi
  if ! pid_alive "$pid_file" && port_open "$CASSANDRA_STORAGE_PORT"; then
    refuse_foreign_port "$CASSANDRA_STORAGE_PORT" CASSANDRA_STORAGE_PORT
    return 1
  fi
  mkdir -p "$CASSANDRA_HOME_DIR/data" "$CASSANDRA_HOME_DIR/logs"
  local classpath
  classpath="$(cassandra_classpath)"
  if ! pid_alive "$pid_file"; then
    local -a jvm_flags
    mapfile -t jvm_flags < <(grep -Ev '^[[:space:]]*(#|$)' "$ROOT/tools/cassandra/jvm.options")
    log "starting cassandra on 127.0.0.1:$CASSANDRA_PORT (data in $CASSANDRA_HOME_DIR)"
    nohup java "${jvm_flags[@]}" \
      -Dcassandra.config="file://$ROOT/tools/cassandra/cassandra.yaml" \
      -Dcassandra.storagedir="$CASSANDRA_HOME_DIR/data" \
      -Dcassandra.logdir="$CASSANDRA_HOME_DIR/logs" \
      -Dlogback.configurationFile="$ROOT/tools/cassandra/logback.xml" \
      -Dcassandra.native_transport_port="$CASSANDRA_PORT" \
      -Dcassandra.storage_port="$CASSANDRA_STORAGE_PORT" \
      -Dcassandra-foreground=yes \
      -cp "$classpath" org.apache.cassandra.service.CassandraDaemon \
      >"$CASSANDRA_HOME_DIR/logs/stdout.log" 2>&1 &
    echo $! >"$pid_file"
  fi
  local started=$SECONDS
  until port_open "$CASSANDRA_PORT"; do
    if ! pid_alive "$pid_file"; then
      log "cassandra exited during start-up; last lines of its logs:"
      tail -n 40 "$CASSANDRA_HOME_DIR/logs/stdout.log" "$CASSANDRA_HOME_DIR/logs/system.log" >&2 || true
      return 1
    fi
    if (( SECONDS - started > CASSANDRA_START_TIMEOUT )); then
      log "cassandra did not answer on port $CASSANDRA_PORT within ${CASSANDRA_START_TIMEOUT}s"
      tail -n 40 "$CASSANDRA_HOME_DIR/logs/system.log" >&2 || true
      return 1
    fi
    sleep 1
  done
  log "cassandra answers on 127.0.0.1:$CASSANDRA_PORT after $((SECONDS - started))s"
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
  while kill -0 "$pid" 2>/dev/null; do
    (( ++waited > 600 )) && { log "$name (pid $pid) ignored SIGTERM for 60s; sending SIGKILL"; kill -9 "$pid"; }
    sleep 0.1
  done
  rm -f "$pid_file"
  log "$name stopped (pid $pid)"
}

# Both ports are checked before either service starts, so nothing is started when one of them is blocked.
check_ports() {
  if ! pid_alive "$REDIS_DIR/redis.pid" && port_open "$REDIS_PORT"; then
    refuse_foreign_port "$REDIS_PORT" REDIS_PORT
  fi
  if ! pid_alive "$CASSANDRA_HOME_DIR/cassandra.pid"; then
    local port variable
    for variable in CASSANDRA_PORT CASSANDRA_STORAGE_PORT; do
      port="${!variable}"
      if port_open "$port"; then refuse_foreign_port "$port" "$variable"; fi
    done
  fi
}

case "${1:-}" in
  up) check_ports; redis_up; cassandra_up ;;
  down)
    stop_by_pid_file redis "$REDIS_DIR/redis.pid"
    stop_by_pid_file cassandra "$CASSANDRA_HOME_DIR/cassandra.pid" ;;
  status)
    if port_open "$CASSANDRA_PORT"; then echo "cassandra: up on $CASSANDRA_PORT"; else echo "cassandra: down"; fi
    if port_open "$REDIS_PORT"; then echo "redis: up on $REDIS_PORT"; else echo "redis: down"; fi ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
