#!/usr/bin/env bash
# `make demo`: generate a sample Zenoss 4 export bundle, run the quickstart playbook on it (check,
# extract, verify against what was generated; then convert its RRD performance data into OpenTSDB points,
# send them to a local VictoriaMetrics and count them there) and print the summary. Quick when run again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

demo="${FERRY_DEMO_DIR:-$FERRY_RUN_DIR/demo}"  # FERRY_DEMO_DIR: the tests run it elsewhere
mkdir -p "$demo"
export ANSIBLE_COLLECTIONS_PATH
ANSIBLE_COLLECTIONS_PATH=$(ferry_collections_path)
export ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ANSIBLE_DEPRECATION_WARNINGS=false

json_value() { "$FERRY_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

bundle_info="$demo/bundle.json"
if [ ! -s "$bundle_info" ]; then
    echo "demo: generating a sample Zenoss 4 export bundle in $demo"
    "$FERRY_PY" "$FERRY_ROOT/tools/gen_zenoss_bundle.py" "$demo" --name 4x-export-demo.tar \
        --devices 4 --rrds-per-device 6 --perf tar.gz --remote-collectors 1 --seed 42 > "$bundle_info.tmp"
    mv "$bundle_info.tmp" "$bundle_info"
fi
bundle=$(json_value "$bundle_info" path)

echo "demo: starting a local VictoriaMetrics (scripts/test-servers up vm)"
if ! "$FERRY_PY" "$FERRY_ROOT/scripts/test-servers" up vm > "$demo/servers.log" 2>&1; then
    cat "$demo/servers.log" >&2
    exit 1
fi
servers="$FERRY_RUN_DIR/servers/servers.json"

ferry_local_inventory "$demo/inventory.yml"
echo "demo: running playbooks/quickstart.yml"
ansible-playbook -i "$demo/inventory.yml" "$FERRY_ROOT/playbooks/quickstart.yml" \
    -e "zenoss_bundle_path=$bundle" \
    -e "zenoss_bundle_dest=$demo/extracted" \
    -e "zenoss_bundle_state_dir=$demo/state" \
    -e "quickstart_points_dir=$demo/points" \
    -e "quickstart_tsdb_url=$(json_value "$servers" FERRY_VM_OPENTSDB_URL)" \
    -e "quickstart_tsdb_verify_url=$(json_value "$servers" FERRY_VM_URL)" \
    -e "{\"quickstart_expected\": $(cat "$bundle_info")}"
