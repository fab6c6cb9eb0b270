# Sourced by tools/local_services.sh and tools/test_services.sh: whether a recorded process still runs.

# The recorded process runs (or is stopped): not gone, and not a zombie (a killed node whose parent has not reaped
# it yet still answers kill -0).
pid_alive() { [[ -f "$1" ]] && process_alive "$(cat "$1")"; }

process_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
  [[ "$state" != Z ]]
}
