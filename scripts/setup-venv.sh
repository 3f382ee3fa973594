#!/usr/bin/env bash
# Create .venv with the pinned controller tools (requirements.txt), and make
# this checkout importable as the collection webinfra.stack through
# .venv/collections/ansible_collections/webinfra/stack. Then create .venv-min
# with the oldest ansible-core the collection claims (requirements-min-ansible.txt).
# Re-running is cheap: pip runs again only when a requirements file changed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

venv="$WEBINFRA_ROOT/.venv"
python=${WEBINFRA_PYTHON:-python3}

step "Controller tools from Debian"
command -v shellcheck >/dev/null 2>&1 || apt_install shellcheck
command -v git >/dev/null 2>&1 || apt_install git
info "shellcheck and git present"

step "Python virtualenv ($venv)"
command -v "$python" >/dev/null 2>&1 || apt_install python3 python3-venv
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "$python is $("$python" --version 2>&1); the pinned ansible-core needs Python 3.11 or newer." \
    "Set WEBINFRA_PYTHON to a newer interpreter."

# make_venv DIR PYTHON REQUIREMENTS: create DIR with PYTHON when missing and
# install REQUIREMENTS into it; pip runs again only when the file changed.
make_venv() {
  local dir=$1 py=$2 requirements=$3
  if [[ ! -x $dir/bin/python ]]; then
    if ! "$py" -m venv "$dir" >/dev/null 2>&1; then
      rm -rf "$dir"
      apt_install python3-venv
      "$py" -m venv "$dir" || die "could not create a virtualenv with $py."
    fi
    info "created with $("$dir/bin/python" --version)"
  fi
  local want have
  want=$(sha256sum "$requirements" | cut -c1-16)
  have=$(cat "$dir/.requirements.sha" 2>/dev/null || true)
  if [[ $want != "$have" ]]; then
    info "installing the pinned tools from PyPI ($(basename "$requirements"))"
    "$dir/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    if ! "$dir/bin/python" -m pip install -q -r "$requirements" >"$dir/pip.log" 2>&1; then
      die "pip install -r $(basename "$requirements") failed." "Check that PyPI is reachable; last lines of $dir/pip.log:" \
        "$(grep -v '^WARNING: Location' "$dir/pip.log" | tail -n 5)"
    fi
    echo "$want" >"$dir/.requirements.sha"
  else
    info "tools up to date"
  fi
}

make_venv "$venv" "$python" "$WEBINFRA_ROOT/requirements.txt"

link="$venv/collections/ansible_collections/webinfra/stack"
mkdir -p "$(dirname "$link")"
ln -sfn "$WEBINFRA_ROOT" "$link"
info "webinfra.stack resolves to this checkout ($link)"

# The oldest ansible-core meta/runtime.yml claims, for the min-ansible gate of
# make test. ansible-core 2.16 runs on Python 3.10 to 3.12.
min_venv="$WEBINFRA_ROOT/.venv-min"
min_python=${WEBINFRA_MIN_PYTHON:-python3}
step "Virtualenv with the oldest ansible-core claimed ($min_venv)"
"$min_python" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' ||
  die "$min_python is $("$min_python" --version 2>&1); ansible-core 2.16 needs Python 3.10 to 3.12." \
    "Set WEBINFRA_MIN_PYTHON to such an interpreter (Python 3.11 is Debian 12's)."
make_venv "$min_venv" "$min_python" "$WEBINFRA_ROOT/requirements-min-ansible.txt"
