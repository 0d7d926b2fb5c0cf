#!/usr/bin/env bash
# Set up everything `make demo` and `make test` need, and do nothing that is already done:
#   - the Debian packages (only those missing; apt-get update only when something is missing),
#   - a .venv on Python >= 3.12 with requirements-dev.txt (re-installed only when that file changes).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
apt_packages=(rrdtool librrd-dev mariadb-server mariadb-client victoria-metrics nginx openssh-server
              rsync pkg-config shellcheck)

log() { printf 'bootstrap: %s\n' "$*" >&2; }

install_apt_packages() {
    local missing=() pkg
    for pkg in "${apt_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${missing[*]} (run as root, or install them first)"
        exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps the packages' own services from starting: tests start private instances.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
}

find_python() {
    local candidate root_dir
    for candidate in python3.13 python3.12; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import venv' 2>/dev/null; then
            command -v "$candidate"; return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        root_dir=$(pyenv root)
        # An unmatched glob stays literal and fails the -x test below.
        for candidate in $(printf '%s\n' "$root_dir"/versions/3.1[23]* | sort -rV); do
            [ -x "$candidate/bin/python3" ] && { echo "$candidate/bin/python3"; return 0; }
        done
    fi
    # Last resort: python3 itself if it is new enough.
    if command -v python3 >/dev/null 2>&1 &&
       python3 -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
        command -v python3; return 0
    fi
    return 1
}

make_venv() {
    local stamp="$venv/.requirements.sha256" want python
    want=$(sha256sum "$root/requirements-dev.txt" | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    if [ ! -x "$venv/bin/python" ]; then
        if ! python=$(find_python); then
            log "no Python >= 3.12 found: install python3.12 or python3.13 (or a pyenv version) and rerun"
            exit 1
        fi
        log "creating .venv with $python"
        # pyenv shims resolve through the real binary so the venv does not depend on the shim.
        python=$("$python" -c 'import sys; print(sys.executable)')
        "$python" -m venv "$venv"
    fi
    log "installing Python packages from requirements-dev.txt"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -r "$root/requirements-dev.txt"
    echo "$want" > "$stamp"
}

install_apt_packages
make_venv
