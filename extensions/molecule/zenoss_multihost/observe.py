"""What the hosts and servers hold now, for verify.yml to tell whether a run (check mode) wrote anything:

    observe.py SERVERS_JSON PREFIX VM_URL UUID HOSTS_DIR

Prints one JSON object: every file under HOSTS_DIR (each host's directory) with its size and mtime, and every
directory; the databases named PREFIX* on mariadb-target (tables, rows, CHECKSUM TABLE, triggers, routines, views);
the points VictoriaMetrics holds for the tenant UUID.
"""
import json
import os
import sys
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
from tools.gen_zenoss_db import describe  # noqa: E402
from tools.zenoss_compare import connect  # noqa: E402


def files(root):
    found, dirs = {}, []
    for top, names, leaves in os.walk(root):
        dirs += [os.path.relpath(os.path.join(top, name), root) for name in names]
        for name in leaves:
            path = os.path.join(top, name)
            stat = os.lstat(path)
            found[os.path.relpath(path, root)] = [stat.st_size, stat.st_mtime_ns]
    return found, sorted(dirs)


def databases(servers, prefix):
    with connect(servers, "FERRY_MARIADB_TARGET") as conn, conn.cursor() as cursor:
        cursor.execute("SHOW DATABASES")
        names = sorted(row[0] for row in cursor.fetchall() if row[0].startswith(prefix))
        return dict((name, describe(cursor, name)) for name in names)


def points(vm_url, uuid):
    urllib.request.urlopen(urllib.request.Request(vm_url + "/internal/force_flush", method="POST"), timeout=60).read()
    query = urllib.parse.urlencode({"match[]": '{zenoss_tenant_id="%s"}' % uuid, "start": "0"})
    body = urllib.request.urlopen(vm_url + "/api/v1/export?" + query, timeout=300).read().decode()
    return sum(len(json.loads(line)["values"]) for line in body.splitlines() if line.strip())


def main(servers_json, prefix, vm_url, uuid, hosts_dir):
    with open(servers_json) as handle:
        servers = json.load(handle)
    found, dirs = files(hosts_dir)
    print(json.dumps({"files": found, "dirs": dirs, "databases": databases(servers, prefix),
                      "points": points(vm_url, uuid)}, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:])
