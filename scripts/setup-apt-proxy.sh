#!/usr/bin/env bash
# A caching apt proxy for the test containers: Debian's apt-cacher-ng on the
# host, port 3142. Each container fetches packages through it (set up by
# molecule/resources/playbooks/create.yml), so a package crosses the network
# once per machine and no two containers share an apt lock.
# WEBINFRA_APT_PROXY=off skips it; the containers then use the mirror directly.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

step "Caching apt proxy for the test containers"
if [[ ${WEBINFRA_APT_PROXY:-on} == off ]]; then
  info "skipped (WEBINFRA_APT_PROXY=off)"
  exit 0
fi
apt_install apt-cacher-ng

# apt-cacher-ng maps Debian URLs to the mirrors of its backends_debian file;
# point it at the mirror the images use, the one known to be reachable.
backends=/etc/apt-cacher-ng/backends_debian
if [[ $(cat "$backends" 2>/dev/null) != "http://deb.debian.org/debian/" ]]; then
  need_root "Configuring apt-cacher-ng"
  echo "http://deb.debian.org/debian/" >"$backends"
  restart=1
fi

listening() { (exec 3<>/dev/tcp/127.0.0.1/3142) 2>/dev/null; }
if [[ -n ${restart:-} ]] || ! listening; then
  need_root "Starting apt-cacher-ng"
  /etc/init.d/apt-cacher-ng restart >/dev/null 2>&1 ||
    die "apt-cacher-ng did not start." "See /var/log/apt-cacher-ng/apt-cacher.err, or set WEBINFRA_APT_PROXY=off."
fi
for _ in $(seq 1 20); do
  if listening; then
    info "apt-cacher-ng answers on port 3142"
    exit 0
  fi
  sleep 0.5
done
die "apt-cacher-ng does not answer on port 3142." "See /var/log/apt-cacher-ng/apt-cacher.err, or set WEBINFRA_APT_PROXY=off."
