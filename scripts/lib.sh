# shellcheck shell=bash
# Shared shell helpers for the project's scripts (sourced, not run).
FERRY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERRY_RUN_DIR=${FERRY_RUN_DIR:-$FERRY_ROOT/.run}
FERRY_PY=$FERRY_ROOT/.venv/bin/python
export FERRY_RUN_DIR FERRY_PY
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
