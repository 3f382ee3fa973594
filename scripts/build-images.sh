#!/usr/bin/env bash
# Build the systemd base images the molecule scenarios and the lab boot:
# Debian 12 (bookworm) and Debian 13 (trixie), made with debootstrap and
# docker import, since no registry can be pulled from here.
#
# An image is rebuilt only when its recipe (this file) changed: the recipe's
# hash is stored as an image label and compared on every run.
# Users with a registry can skip the build: WEBINFRA_IMAGE_DEBIAN12 and
# WEBINFRA_IMAGE_DEBIAN13 name the image to use instead (it is pulled when
# it is not present locally).
#
# Usage: build-images.sh [12] [13]   (both when no argument is given)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

PACKAGES=python3,python3-apt,systemd,systemd-sysv,dbus,sudo,ca-certificates,iproute2,procps,curl
RECIPE_HASH=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)

suite_of() {
  case $1 in
    12) echo bookworm ;;
    13) echo trixie ;;
    *) die "unknown Debian release '$1'." "Use 12 (bookworm) or 13 (trixie)." ;;
  esac
}

default_image() { echo "webinfra/systemd-debian:$1"; }

build_one() {
  local release=$1 suite image override_var current rootfs
  suite=$(suite_of "$release")
  override_var="WEBINFRA_IMAGE_DEBIAN$release"
  image=${!override_var:-}

  step "Base image for Debian $release ($suite)"
  if [[ -n $image ]]; then
    info "using $image from \$$override_var"
    docker image inspect "$image" >/dev/null 2>&1 || docker pull "$image" ||
      die "\$$override_var names '$image', which is neither local nor pullable." \
        "Unset $override_var to build the image locally with debootstrap."
    return 0
  fi

  image=$(default_image "$release")
  current=$(docker image inspect -f '{{ index .Config.Labels "org.webinfra.recipe" }}' "$image" 2>/dev/null || true)
  if [[ $current == "$RECIPE_HASH" ]]; then
    info "$image is up to date (recipe $RECIPE_HASH)"
    return 0
  fi
  [[ -n $current ]] && info "$image was built from recipe $current; rebuilding for $RECIPE_HASH"

  need_root "debootstrap"
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  [[ -e /usr/share/debootstrap/scripts/$suite ]] ||
    die "this debootstrap does not know '$suite'." "Upgrade debootstrap (apt-get install -t ${suite} debootstrap) or build on a newer Debian."

  rootfs=$(mktemp -d /var/tmp/webinfra-rootfs.XXXXXX)
  # shellcheck disable=SC2064  # expand now: the path is fixed
  trap "rm -rf '$rootfs'" RETURN
  info "debootstrap $suite into $rootfs (about a minute)"
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$rootfs" >"$rootfs.log" 2>&1; then
    die "debootstrap $suite failed." \
      "Check that Debian's package mirror is reachable; last lines of $rootfs.log:" \
      "$(tail -n 5 "$rootfs.log")"
  fi
  rm -f "$rootfs.log"

  info "preparing the root file system for systemd in a container"
  # Every container gets its own machine id at first boot.
  : >"$rootfs/etc/machine-id"
  rm -f "$rootfs/var/lib/dbus/machine-id"
  # The containers are thrown away after each run: dpkg need not fsync every
  # file it unpacks. On overlayfs that cut a typical install (MariaDB, nginx,
  # HAProxy, Prometheus) by 20-40 % (42-61 s -> 34-37 s, 2026-12-07). A real
  # server keeps dpkg's safe default; the roles do not set this.
  printf 'force-unsafe-io\n' >"$rootfs/etc/dpkg/dpkg.cfg.d/webinfra-test-unsafe-io"
  # Units that only make sense on real hardware or consoles fail in a container.
  for unit in getty.target console-getty.service systemd-remount-fs.service \
    systemd-firstboot.service sys-kernel-debug.mount sys-kernel-tracing.mount \
    systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
    proc-sys-fs-binfmt_misc.automount systemd-binfmt.service; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  # Keep the image small: the package lists stay, the downloaded .debs go.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb

  info "importing as $image"
  tar -C "$rootfs" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' \
    --change "LABEL org.webinfra.recipe=$RECIPE_HASH org.webinfra.suite=$suite" \
    - "$image" >/dev/null || die "docker import of $image failed."
  info "built $image"
}

releases=("$@")
((${#releases[@]})) || releases=(12 13)
for release in "${releases[@]}"; do
  build_one "$release"
done
