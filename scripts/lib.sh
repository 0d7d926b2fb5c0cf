# shellcheck shell=bash
# Shared shell helpers for the project's scripts (sourced, not run).
FERRY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERRY_RUN_DIR=${FERRY_RUN_DIR:-$FERRY_ROOT/.run}
FERRY_PY=$FERRY_ROOT/.venv/bin/python
export FERRY_RUN_DIR
export PATH="$FERRY_ROOT/.venv/bin:$PATH"

# Use the collection in place: <run dir>/collections/ansible_collections/ferry/migrate -> the checkout.
ferry_collections_path() {
    local link="$FERRY_RUN_DIR/collections/ansible_collections/ferry/migrate"
    if [ ! -L "$link" ]; then
        mkdir -p "$(dirname "$link")"
        ln -sfn "$FERRY_ROOT" "$link"
    fi
    echo "$FERRY_RUN_DIR/collections"
}

# An inventory where every group (source, target, workers) is this machine.
ferry_local_inventory() {
    local file=$1
    cat > "$file" <<INV
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: $FERRY_PY
  children:
    source: {hosts: {localhost: {}}}
    target: {hosts: {localhost: {}}}
    workers: {hosts: {localhost: {}}}
INV
}
