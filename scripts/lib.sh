# shellcheck shell=bash
# Shared helpers for the set-up scripts: progress messages and clear failures.

WEBINFRA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export WEBINFRA_ROOT

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
  printf '\033[31mERROR: %s\033[0m\n' "$1" >&2
  shift
  for line in "$@"; do printf '       %s\n' "$line" >&2; done
  exit 1
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "$1 needs root." "Run it as root (or with sudo)."
}

# apt_install PKG...: install Debian packages when missing, updating the lists once.
apt_install() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  need_root "Installing ${missing[*]}"
  command -v apt-get >/dev/null || die "apt-get not found: ${missing[*]} must be installed by hand on this system."
  info "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed." "Check that Debian's package mirror is reachable."
  apt-get install -y -qq "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed." "Run 'apt-get install ${missing[*]}' by hand to see why."
}
