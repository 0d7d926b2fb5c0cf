#!/usr/bin/env bash
# `make demo`: the whole Zenoss 4 -> 5 migration on this machine. Four inventory hosts reached over the test sshd
# (zenoss4: the Zenoss 4 host, zenoss5: the Zenoss 5 host, worker1 and worker2: the perf data), each with its own
# directory under $FERRY_DEMO_DIR/hosts; Zenoss 4's databases on the test MariaDB `mariadb`, Zenoss 5's on
# `mariadb-target`, the perf data into the test VictoriaMetrics `vm`. The Zenoss 4 side is generated once
# (tools/zenoss_demo.py prepare: $ZENHOME with a remote collector, databases shaped like zenoss_zep and zodb);
# playbooks/zenoss4_to_zenoss5.yml runs on its own inventory; then the verification is printed (tools/zenoss_demo.py
# report: tables, rows and CHECKSUM TABLE on both servers, triggers/routines/views, perf points sent and read back,
# key tags, each host's journal). Run again, the playbook changes nothing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

demo="${FERRY_DEMO_DIR:-$FERRY_RUN_DIR/demo}"  # FERRY_DEMO_DIR: the tests run it elsewhere
mkdir -p "$demo"
demo=$(cd "$demo" && pwd)
started=$SECONDS
export ANSIBLE_COLLECTIONS_PATH
ANSIBLE_COLLECTIONS_PATH=$(ferry_collections_path)
export ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ANSIBLE_DEPRECATION_WARNINGS=false \
       ANSIBLE_NOCOLOR=true

echo "demo: starting the test servers (scripts/test-servers up ssh mariadb mariadb-target vm)"
if ! "$FERRY_PY" "$FERRY_ROOT/scripts/test-servers" up ssh mariadb mariadb-target vm > "$demo/servers.log" 2>&1; then
    cat "$demo/servers.log" >&2
    exit 1
fi
servers="$FERRY_RUN_DIR/servers/servers.json"

"$FERRY_PY" "$FERRY_ROOT/tools/zenoss_demo.py" prepare "$demo" "$servers"

log="$demo/playbook.log"
cat <<EOF
demo: running playbooks/zenoss4_to_zenoss5.yml with $demo/inventory.yml
      zenoss4 (export: dumps, model files, bundle) -> zenoss5 (bundle pulled over ssh, checked, databases and
      indexes restored, Zenoss 5's commands in Import4's order) -> worker1, worker2 (perf data converted and sent);
      Zenoss's own commands are stand-ins (tests/support/zenoss5_standin). Only changes are shown; all in $log
EOF
# The console gets, as the playbook runs, each task that changed something (with its hosts), failures whole, and
# the recap; the log everything.
status=0
ansible-playbook -i "$demo/inventory.yml" ferry.migrate.zenoss4_to_zenoss5 2>&1 | tee "$log" | awk '
    function show(line) { print line; fflush() }
    function flush() { if (hosts != "") show(sprintf("  changed  %s  [%s]", task, substr(hosts, 3))); hosts = "" }
    /^PLAY RECAP/ { flush(); recap = 1 }
    recap { show($0); next }
    /^PLAY \[/ { flush(); sub(/ \**$/, ""); show($0); next }
    /^TASK \[/ { flush(); task = $0; sub(/^TASK \[/, "", task); sub(/\] \**$/, "", task); failing = 0; next }
    /^changed: \[/ { host = $0; sub(/^changed: \[/, "", host); sub(/\].*/, "", host)
                     if (index(hosts ", ", ", " host ", ") == 0) hosts = hosts ", " host; next }
    /^(fatal|failed): |^\[ERROR\]|^ERROR!/ { failing = 1; show("  FAILED in " task) }
    failing { show($0) }
' || status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "demo: the playbook failed (exit $status); the whole output is in $log" >&2
    exit "$status"
fi
changed=$(awk '/^PLAY RECAP/ { recap = 1 } recap { for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) {
              sub(/changed=/, "", $i); total += $i } } END { print total + 0 }' "$log")
if [ "$changed" -eq 0 ]; then
    echo "demo: nothing changed (changed=0 on every host): the journals made every step a no-op"
else
    echo "demo: $changed change(s) made"
fi

"$FERRY_PY" "$FERRY_ROOT/tools/zenoss_demo.py" report "$demo" "$servers" || status=$?
echo "demo: done in $((SECONDS - started)) s (work files in $demo; run it again: nothing changes)"
exit "$status"
