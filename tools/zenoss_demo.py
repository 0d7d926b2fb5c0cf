"""`make demo`'s Zenoss 4 side and its verification (scripts/demo.sh runs both around the playbook).

    python tools/zenoss_demo.py prepare DEMO_DIR SERVERS_JSON   the Zenoss 4 host's files and databases (once),
                                                                the Zenoss 5 stand-in's model, the inventory
    python tools/zenoss_demo.py report DEMO_DIR SERVERS_JSON    the verification, printed as tables; exit 1 when
                                                                something differs

DEMO_DIR/seed.json names this demo: a random dmd UUID (every point's zenoss_tenant_id on VictoriaMetrics) and a
database prefix made of it, so that two demo directories (a user's and a test's) never share data on the test
servers. DEMO_DIR/hosts/<host>/ is each inventory host's own directory; the hosts are this machine reached over
the test sshd. Zenoss's own commands are the stand-ins of tests/support/zenoss5_standin (no Zenoss here).
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import conftest  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import  # links the collection
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (  # noqa: E402
    Journal, describe as describe_step, format_table,
)
from tools.gen_zenoss_db import build_databases  # noqa: E402  pylint: disable=wrong-import-position
from tools.gen_zenoss_home import build_home  # noqa: E402  pylint: disable=wrong-import-position
from tools.zenoss_compare import DATABASES, compare_databases, connect, perf  # noqa: E402

SOURCE, TARGET, WORKERS = "zenoss4", "zenoss5", ("worker1", "worker2")
STANDIN = os.path.join(ROOT, "tests", "support", "zenoss5_standin", "zenoss_standin.py")
# Small enough to run in a minute or two, big enough to show every part: 3 devices (one behind a remote
# collector), 4 RRD files each, 2 days of history; 1000 events and model objects.
HOME = {"devices": 3, "rrds_per_device": 4, "remote_collectors": 1, "days": 2, "seed": 13}
DB_ROWS, DB_SEED = 1000, 13


def _write_json(path, value):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def _read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def host_dir(demo, host):
    return os.path.join(demo, "hosts", host)


def seed(demo):
    """This demo's identity, chosen once."""
    path = os.path.join(demo, "seed.json")
    if not os.path.exists(path):
        dmd_uuid = str(uuid.uuid4())
        _write_json(path, {"uuid": dmd_uuid, "prefix": "ferrydemo_%s_" % dmd_uuid[:8]})
    return _read_json(path)


def _source_databases_missing(servers, prefix):
    with connect(servers, "FERRY_MARIADB") as conn, conn.cursor() as cursor:
        cursor.execute("SHOW DATABASES LIKE %s", (prefix.replace("_", "\\_") + "%",))
        present = {row[0] for row in cursor.fetchall()}
    return [prefix + name for name in DATABASES if prefix + name not in present]


def prepare(demo, servers_json):
    servers_json = os.path.abspath(servers_json)
    servers = _read_json(servers_json)
    os.makedirs(demo, exist_ok=True)
    ident = seed(demo)
    home_json = os.path.join(host_dir(demo, SOURCE), "home.json")
    missing = _source_databases_missing(servers, ident["prefix"])
    if os.path.exists(home_json) and missing:
        _start_over(demo, servers, ident["prefix"])
    if not os.path.exists(home_json):
        _generate_home(demo, ident["uuid"], home_json)
        missing = DATABASES
    if missing:
        print("demo: generating Zenoss 4's databases %s on the source MariaDB"
              % ", ".join(ident["prefix"] + name for name in DATABASES))
        build_databases(lambda: connect(servers, "FERRY_MARIADB", autocommit=True, max_allowed_packet=64 << 20),
                        seed=DB_SEED, rows=DB_ROWS, prefix=ident["prefix"], replace=True)
    _seed_standin_model(demo)
    write_inventory(demo, servers_json, servers, ident)


def _start_over(demo, servers, prefix):
    """The test servers' data was made anew (a new .run/servers): this demo's journals describe a migration whose
    databases are gone. Its hosts' directories and its databases on the target go (the prefix is this demo's)."""
    print("demo: the source databases are gone (new test servers?): starting this demo over")
    shutil.rmtree(os.path.join(demo, "hosts"))
    with connect(servers, "FERRY_MARIADB_TARGET", autocommit=True) as conn, conn.cursor() as cursor:
        for name in DATABASES:
            cursor.execute("DROP DATABASE IF EXISTS `%s%s`" % (prefix, name))


def _generate_home(demo, dmd_uuid, home_json):
    """The Zenoss 4 host's $ZENHOME, model files (with this demo's dmd UUID) and remote collector archive;
    home.json, written last, says it is complete."""
    print("demo: generating the Zenoss 4 host: $ZENHOME, model files, a remote collector's archive")
    out = os.path.join(host_dir(demo, SOURCE), "zenoss4")
    shutil.rmtree(out, ignore_errors=True)  # an interrupted generation
    info = build_home(out, **HOME)
    with open(info["dmd_uuid_file"], "w", encoding="utf-8") as handle:
        handle.write(dmd_uuid + "\n")
    _write_json(home_json, dict(info, dmd_uuid=dmd_uuid))


def _seed_standin_model(demo):
    """The Zenoss 5 stand-in's live model holds the components of Zenoss 4's (what the model database brings)."""
    state = os.path.join(host_dir(demo, TARGET), "zenoss5-standin")
    if not os.path.exists(os.path.join(state, "model.json")):
        components = os.path.join(host_dir(demo, SOURCE), "zenoss4", "model", "componentList.txt")
        subprocess.run([sys.executable, STANDIN, "--state", state, "model", "--components", components], check=True,
                       stdout=subprocess.DEVNULL)


def _standin(demo, host, name):
    return [sys.executable, STANDIN, "--state", os.path.join(host_dir(demo, host), name)]


def host_vars(demo, servers_json, servers, ident):
    """Each host's variables: its own directories, the test servers, the stand-ins as Zenoss's commands."""
    source, target = host_dir(demo, SOURCE), host_dir(demo, TARGET)
    zenoss4, zenoss5 = _standin(demo, SOURCE, "zenoss4-standin"), _standin(demo, TARGET, "zenoss5-standin")
    servers_lookup = "(lookup('ansible.builtin.file', %s) | from_json)" % json.dumps(servers_json)
    export = {
        "zenoss_export_zenhome": source + "/zenoss4/zenhome",
        "zenoss_export_login_host": servers["FERRY_MARIADB_HOST"],
        "zenoss_export_login_port": int(servers["FERRY_MARIADB_PORT"]),
        "zenoss_export_login_user": servers["FERRY_MARIADB_USER"],
        # read from servers.json when needed: the password is not copied into the inventory
        "zenoss_export_login_password": "{{ %s.FERRY_MARIADB_PASSWORD }}" % servers_lookup,
        "zenoss_export_collector_archives": sorted(glob.glob(source + "/zenoss4/collectors/*.tgz")),
        "zenoss_export_stop_command": zenoss4 + ["zenoss", "stop"],
        "zenoss_export_start_command": zenoss4 + ["zenoss", "start"],
        "zenoss_export_model_files_command": zenoss4 + ["zendmd4", "--model", source + "/zenoss4/model"],
        "zenoss_export_work_dir": source + "/export",
        "zenoss_export_state_dir": source + "/state",
        "zenoss_export_target_host": TARGET,
        "zenoss_export_target_dir": target + "/import",
        "zenoss_export_poll_interval": 1,
    }
    imports = {
        "zenoss_import_bundle_path": target + "/import/4x-export.tar",
        "zenoss_import_extract_dir": target + "/extracted",
        "zenoss_import_state_dir": target + "/state",
        "zenoss_import_login_host": servers["FERRY_MARIADB_TARGET_HOST"],
        "zenoss_import_login_port": int(servers["FERRY_MARIADB_TARGET_PORT"]),
        "zenoss_import_login_user": servers["FERRY_MARIADB_TARGET_USER"],
        "zenoss_import_login_password": "{{ %s.FERRY_MARIADB_TARGET_PASSWORD }}" % servers_lookup,
        "zenoss_import_zenhome": target + "/zenoss5",
        "zenoss_import_schema_command": zenoss5 + ["zeneventserver-create-db", "--update_schema_only"],
        "zenoss_import_remove_zenpacks_command": zenoss5 + ["zendmd", "--commit", "--script=/dev/stdin"],
        "zenoss_import_zenmigrate_command": zenoss5 + ["zenmigrate"],
        "zenoss_import_zenpack_install_command": zenoss5 + ["zenpack", "--install"],
        "zenoss_import_finalize_command": zenoss5 + ["zenpack", "--restore"],
        "zenoss_import_zenpack_list_command": zenoss5 + ["zenpack", "--list"],
        "zenoss_import_components_command": zenoss5 + ["zendmd", "--script=/dev/stdin"],
        "zenoss_import_poll_interval": 1,
    }
    for key in ("zep", "zodb", "session"):
        export["zenoss_export_%s_database" % key] = imports["zenoss_import_%s_database" % key] = (
            ident["prefix"] + {"zep": "zenoss_zep", "zodb": "zodb", "session": "zodb_session"}[key])
    workers = {host: {
        "zenoss_perf_url": servers["FERRY_VM_OPENTSDB_URL"],
        "zenoss_perf_kind": "victoriametrics",
        "zenoss_perf_verify_url": servers["FERRY_VM_URL"],
        "zenoss_perf_work_dir": host_dir(demo, host) + "/perf",
        "zenoss_perf_state_dir": host_dir(demo, host) + "/state",
        "zenoss_perf_throttle": 0,
        "zenoss_perf_accelerators": [],
        "zenoss_perf_min_free_mb": 1,
        "zenoss_perf_poll_interval": 1,
    } for host in WORKERS}
    return export, imports, workers


def write_inventory(demo, servers_json, servers, ident):
    export, imports, workers = host_vars(demo, servers_json, servers, ident)
    connection = {
        "ansible_connection": "ssh",
        "ansible_host": servers["FERRY_SSH_HOST"],
        "ansible_port": int(servers["FERRY_SSH_PORT"]),
        "ansible_user": servers["FERRY_SSH_USER"],
        "ansible_ssh_private_key_file": servers["FERRY_SSH_KEY"],
        "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
                                   % servers["FERRY_SSH_KNOWN_HOSTS"],
        "ansible_pipelining": True,
        # the hosts are this machine: the controller's Python has what the modules need
        "ansible_python_interpreter": sys.executable,
    }
    inventory = {"all": {"vars": connection, "children": {
        "source": {"hosts": {SOURCE: export}},
        "target": {"hosts": {TARGET: imports}},
        "workers": {"hosts": workers},
    }}}
    lines = ["# `make demo`'s inventory (written by tools/zenoss_demo.py): the Zenoss 4 host, the Zenoss 5 host and",
             "# two workers, each this machine over the test sshd with a directory of its own under %s/hosts."
             % demo, "# Run it again: ansible-playbook -i %s ferry.migrate.zenoss4_to_zenoss5"
             % os.path.join(demo, "inventory.yml")]
    _yaml(inventory, 0, lines)
    path = os.path.join(demo, "inventory.yml")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def _yaml(value, depth, lines):
    """Block mappings, JSON (YAML flow) scalars and lists: readable and unambiguous."""
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append("%s%s:" % ("  " * depth, key))
            _yaml(item, depth + 1, lines)
        else:
            lines.append("%s%s: %s" % ("  " * depth, key, json.dumps(item)))


def _mark(ok):
    return "equal" if ok else "DIFFERENT"


def _print_database(one):
    was, now = one["source"], one["target"]
    note = "  (zenbackup dumps it without its rows: the tables arrive empty)" if one["schema_only"] else ""
    print("\n  %s%s" % (was["database"], note))
    width = max(len(table) for table in list(was["tables"]) + list(now["tables"]) + ["table"])
    print("    %-*s  %s  %s" % (width, "table", "source rows  target rows", "source checksum  target checksum"))
    for table in sorted(set(was["tables"]) | set(now["tables"])):
        rows = (was["tables"].get(table, "-"), now["tables"].get(table, "-"))
        sums = (was["checksums"].get(table, "-"), now["checksums"].get(table, "-"))
        if one["schema_only"]:
            verdict = "no rows, as dumped" if table in was["tables"] and rows[1] == 0 else "DIFFERENT"
        else:
            verdict = _mark(rows[0] == rows[1] and sums[0] == sums[1])
        print("    %-*s  %11s  %11s  %15s  %15s  %s" % (width, table, rows[0], rows[1], sums[0], sums[1], verdict))
    print("    " + ", ".join("%s %d / %d %s" % (part, len(was[part]), len(now[part]), _mark(one["same"][part]))
                             for part in ("triggers", "routines", "views")))


def _journals(demo):
    """Each host's step records (the files kept beside them, e.g. sql_import's <step>.scan.json, have no status)."""
    hosts = {}
    for host in (SOURCE, TARGET) + WORKERS:
        state = os.path.join(host_dir(demo, host), "state")
        records = Journal(state, create=False).records() if os.path.isdir(state) else []
        hosts[host] = [describe_step(record) for record in records if record.get("status")]
    return hosts


def _print_perf(servers, ident, demo, journals):
    home = _read_json(os.path.join(host_dir(demo, SOURCE), "home.json"))
    found, ok = perf(servers["FERRY_VM_URL"], ident["uuid"], home["zenhome"], home["collector_archives"])
    sent = sum(row["counts"].get("points", 0) for host in WORKERS for row in journals[host]
               if row["name"].startswith("zenoss_perf_send."))
    print("\nPerf data: VictoriaMetrics %s, points tagged zenoss_tenant_id=%s (the dmd UUID)"
          % (servers["FERRY_VM_URL"], ident["uuid"]))
    print("  RRD files %d, series on the target %d (%d from the remote collector)"
          % (found["files"], found["series"], found["collector_series"]))
    print("  points sent by the workers %d, read back %d  %s" % (sent, found["points"], _mark(sent == found["points"])))
    print("  GAUGE values of the RRD files compared with the points: %d, differences %d  %s"
          % (found["gauge_values_checked"], len(found["differences"]), _mark(not found["differences"])))
    print("  key tags (Zenoss 5's form, Devices/<path below the device class>), a sample:")
    for kind, sample in sorted(found["key_samples"].items()):
        print("    %-20s perf/Devices/%s -> metric %s, key %s (%d points)"
              % (kind + ":", sample["file"], sample["metric"], sample["key"], sample["points"]))
    for line in found["differences"] + ["key tag not in Zenoss 5's form: %s" % key for key in found["bad_keys"]]:
        print("  ! " + line)
    return ok and sent == found["points"]


def report(demo, servers_json):
    """The verification, read from the servers and files themselves; True when everything is the same."""
    servers, ident = _read_json(servers_json), seed(demo)
    print("\n=== Verification " + "=" * 62)
    print("Databases: source MariaDB %s:%s (Zenoss 4) -> target MariaDB %s:%s (Zenoss 5)"
          % (servers["FERRY_MARIADB_HOST"], servers["FERRY_MARIADB_PORT"], servers["FERRY_MARIADB_TARGET_HOST"],
             servers["FERRY_MARIADB_TARGET_PORT"]))
    with connect(servers, "FERRY_MARIADB") as source, connect(servers, "FERRY_MARIADB_TARGET") as target:
        found = compare_databases(source, target, ident["prefix"])
    for name in DATABASES:
        _print_database(found[name])
    ok = all(all(one["same"].values()) for one in found.values())
    journals = _journals(demo)
    ok = _print_perf(servers, ident, demo, journals) and ok
    print("\nJournal (what ferry.migrate.migration_status shows), per host")
    for host, rows in journals.items():
        print("  %s (%s)" % (host, os.path.join(host_dir(demo, host), "state")))
        print("\n".join("    " + line for line in format_table(rows).splitlines()))
    unfinished = [row["name"] for rows in journals.values() for row in rows if row["status"] != "complete"]
    ok = ok and not unfinished and all(journals.values())
    if ok:
        print("\nverification: everything equal, every step complete")
    else:
        print("\nverification: DIFFERENCES (see above)%s"
              % (": unfinished steps " + ", ".join(unfinished) if unfinished else ""))
    return 0 if ok else 1


def main(argv):
    if len(argv) != 3 or argv[0] not in ("prepare", "report"):
        print(__doc__, file=sys.stderr)
        return 2
    return prepare(argv[1], argv[2]) if argv[0] == "prepare" else report(argv[1], argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
