#!/usr/bin/env bash
# What `make up` (so `make serve` and `make test`) needs beyond the Python packages uv installs:
#   - Redis (Debian's redis-server): installed with apt-get when missing and we are root on Debian, and the
#     system instance the package starts is stopped (only that one: the tests start their own);
#   - readelf (binutils), which the layer's glibc check uses, the same way;
#   - AWS's Lambda Runtime Interface Emulator (aws-lambda-rie), built with Go from the Go module proxy into
#     .build/tools/bin (git-ignored), once per version.
# Anything it cannot install, it names, with the command to run, and exits 1. Quick when all is there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RIE_MODULE="github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
# The Go module proxy serves the emulator only as this pseudo-version (tag v1.23.0 is not served).
RIE_VERSION="v0.0.0-20261030222936-bef5c4ba774d"
TOOLS_BIN="$ROOT/.build/tools/bin"
RIE="$TOOLS_BIN/aws-lambda-rie"

log() { printf '[prerequisites] %s\n' "$*" >&2; }

can_apt() { [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; }

apt_updated=false
apt_install() {
  if ! $apt_updated; then
    apt-get update -qq
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  if ! can_apt; then
    log "redis-server is not installed. On Debian or Ubuntu run:"
    log "  sudo apt-get install redis-server && sudo service redis-server stop"
    log "(the second command stops the system Redis the package starts; this project starts its own)"
    return 1
  fi
  log "installing redis-server (apt-get)"
  apt_install redis-server
  # The package starts a system Redis on 6379. Stop that instance only: its init script stops the pid in the
  # package's own pid file, never a Redis that something else started.
  if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    systemctl stop redis-server >/dev/null 2>&1 || true
  else
    service redis-server stop >/dev/null 2>&1 || true
  fi
  log "redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2) installed; its system instance is stopped"
}

ensure_readelf() {
  command -v readelf >/dev/null && return 0
  if ! can_apt; then
    log "readelf is not installed: install binutils (sudo apt-get install binutils)"
    return 1
  fi
  log "installing binutils (apt-get) for readelf"
  apt_install binutils
}

go_command() {
  if [[ -n "${GO:-}" ]]; then echo "$GO"
  elif command -v go >/dev/null; then command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go
  fi
}

ensure_emulator() {
  local stamp="$RIE.version"
  [[ -x "$RIE" && "$(cat "$stamp" 2>/dev/null)" == "$RIE_VERSION" ]] && return 0
  local go
  go="$(go_command)"
  if [[ -z "$go" ]]; then
    log "Go is not installed; it builds the Lambda Runtime Interface Emulator. Install Go 1.21 or newer"
    log "(https://go.dev/doc/install; a Go older than the module's 1.26 fetches that toolchain itself),"
    log "or set GO=/path/to/go, then run make up again."
    return 1
  fi
  log "building aws-lambda-rie $RIE_VERSION with $("$go" version | cut -d' ' -f3) (about a minute the first time)"
  mkdir -p "$TOOLS_BIN"
  GOBIN="$TOOLS_BIN" CGO_ENABLED=0 GOFLAGS=-modcacherw "$go" install "$RIE_MODULE@$RIE_VERSION"
  echo "$RIE_VERSION" >"$stamp"
  log "aws-lambda-rie ready: $RIE"
}

status=0
ensure_redis || status=1
ensure_readelf || status=1
ensure_emulator || status=1
exit $status
