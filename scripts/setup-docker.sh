#!/usr/bin/env bash
# Make sure a Docker engine answers: install docker.io from Debian when the
# engine is missing, start dockerd when it is not running (no systemd needed).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

step "Docker engine"
if docker info >/dev/null 2>&1; then
  info "already running ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  apt_install docker.io
fi
command -v dockerd >/dev/null 2>&1 || die "dockerd is still missing after installing docker.io."
command -v docker >/dev/null 2>&1 || apt_install docker.io

log=${WEBINFRA_DOCKERD_LOG:-/var/log/dockerd.log}
if ! pgrep -x dockerd >/dev/null 2>&1; then
  need_root "Starting dockerd"
  info "starting dockerd (log: $log)"
  nohup dockerd >"$log" 2>&1 &
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    info "engine up ($(docker version -f '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
die "the Docker engine did not answer within 60 s." \
  "Last lines of $log:" \
  "$(tail -n 5 "$log" 2>/dev/null || echo '(no log)')"
