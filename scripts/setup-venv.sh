#!/usr/bin/env bash
# Create .venv with the pinned controller tools (requirements.txt), and make
# this checkout importable as the collection webinfra.stack through
# .venv/collections/ansible_collections/webinfra/stack.
# Re-running is cheap: pip runs again only when requirements.txt changed.
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

if [[ ! -x $venv/bin/python ]]; then
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    "$python" -m venv "$venv" || die "could not create a virtualenv with $python."
  fi
  info "created with $("$venv/bin/python" --version)"
fi

want=$(sha256sum "$WEBINFRA_ROOT/requirements.txt" | cut -c1-16)
have=$(cat "$venv/.requirements.sha" 2>/dev/null || true)
if [[ $want != "$have" ]]; then
  info "installing the pinned tools from PyPI (requirements.txt)"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! "$venv/bin/python" -m pip install -q -r "$WEBINFRA_ROOT/requirements.txt" >"$venv/pip.log" 2>&1; then
    die "pip install -r requirements.txt failed." "Check that PyPI is reachable; last lines of $venv/pip.log:" \
      "$(grep -v '^WARNING: Location' "$venv/pip.log" | tail -n 5)"
  fi
  echo "$want" >"$venv/.requirements.sha"
else
  info "tools up to date"
fi

link="$venv/collections/ansible_collections/webinfra/stack"
mkdir -p "$(dirname "$link")"
ln -sfn "$WEBINFRA_ROOT" "$link"
info "webinfra.stack resolves to this checkout ($link)"
