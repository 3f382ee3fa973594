#!/usr/bin/env bash
# Make sure a Docker engine answers: install docker.io from Debian when the
# engine is missing, start dockerd when it is not running (no systemd needed).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

# Every systemd container takes several inotify instances of the (shared)
# root user; the kernel default of 128 runs out at about a dozen containers,
# and systemd then hangs at boot ("Failed to create inotify object").
raise_sysctl() {
  local key=$1 want=$2 have
  have=$(sysctl -n "$key" 2>/dev/null || echo 0)
  ((have >= want)) && return 0
  sysctl -qw "$key=$want" 2>/dev/null ||
    die "$key is $have and could not be raised to $want." \
      "Raise it as root on the host (sysctl -w $key=$want): the lab and the scenarios boot many systemd containers."
  info "raised $key from $have to $want"
}

step "Kernel limits for many systemd containers"
raise_sysctl fs.inotify.max_user_instances 8192
raise_sysctl fs.inotify.max_user_watches 1048576

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
