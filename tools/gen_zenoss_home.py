"""Build a Zenoss 4 host's files for bundle_create's tests, benchmark and demo: a $ZENHOME, the database dumps
and the model files the export role produces, and the remote collectors' archives.

Layout of OUT_DIR::

    zenhome/                              what a Zenoss 4.2 $ZENHOME holds that the export reads
      etc/global.conf                       zodb-* and zep-* settings (backup.settings is made of them)
      etc/zeneventserver.conf, zope.conf, zenhub.conf, hubpassword, zenperfsnmp.conf (a symlink to its .example)
      bin/zenoss, zenbackup, zeneventserver, python2.7, python -> python2.7
      ZenPacks/easy-install.pth, ZenPacks/ZenPacks.zenoss.<Name>-<ver>-py2.7.egg/...
      perf/Devices/<device>/[<component>/]<dp>.rrd   real RRDs (rrdtool) of the devices the local collector polls
      perf/Daemons/<daemon>/<collector>_<name>.rrd   the daemons' own statistics
      var/zeneventserver/index/{summary,archive}/... Lucene-like index files
      var/zencatalogservice/global_catalog/index/...
      var/flexera/                          licence files (unless with_flexera=False)
    model/componentList.txt, rrdpath.map, dmd_uuid.txt    what the role writes from the model (export4's files)
    dumps/zodb.sql.gz, zodb_session.sql.gz (schema only), zep.sql.gz    mysqldump-shaped, as sql_dump writes
    collectors/<hub>-<collector>-perf-backup-<ts>.tgz     each remote collector's zenbackup --no-eventsdb
                                                          --no-zodb archive: zenbackup/{etc.tar, perf.tar}

The devices, their RRDs, the dumps, the indexes, the ZenPacks and the licence files are those of
tools/gen_zenoss_bundle.py (imported, not repeated): the same arguments give the same model and data as
build_bundle(), laid out as the source host holds them instead of packed. ``pad_bytes`` adds incompressible bulk
(a quarter into zep.sql.gz, the rest into the event index), for a benchmark of any size.

Usage: python tools/gen_zenoss_home.py OUT_DIR [--devices N] [--rrds-per-device N] [--remote-collectors N]
       [--pad-mb N] [--seed N] [--days N] [--no-flexera] [--no-events] [--no-indexes]; prints build_home()'s info.
"""

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a script: make `tools` and the collection importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import conftest  # noqa: F401  pylint: disable=unused-import  # links the collection under .run/collections

from tools.gen_zenoss_bundle import (  # noqa: E402  pylint: disable=wrong-import-position
    DEFAULT_END, HUB, LOCAL_COLLECTOR, _Build, _catalog_entries, _component_list, _flexera_files, _Options,
    _rrdpath_map, _write_rrds, _write_zep_dump, _write_zodb_dump, _zenpack_entries, _zep_index_entries,
)
from ansible_collections.ferry.migrate.plugins.module_utils.zenoss.export import (  # noqa: E402
    write_collector_archive,
)

__all__ = ["build_home", "GLOBAL_CONF"]

GLOBAL_CONF = {
    "zodb-host": "localhost", "zodb-port": "3306", "zodb-db": "zodb", "zodb-user": "zenoss",
    "zodb-password": "zenoss", "zodb-admin-user": "root", "zodb-admin-password": "",
    "zep-host": "localhost", "zep-port": "3306", "zep-db": "zenoss_zep", "zep-user": "zenoss",
    "zep-password": "zenoss", "zep-admin-user": "root", "zep-admin-password": "",
    "amqphost": "localhost", "amqpport": "5672", "amqpvhost": "/zenoss", "amqpuser": "zenoss",
    "amqppassword": "zenoss",
}
BIN_SCRIPTS = {
    "zenoss": "#! /usr/bin/env bash\n# Zenoss 4 control script\nexec $ZENHOME/bin/zenoss-ctl \"$@\"\n",
    "zenbackup": "#! /usr/bin/env bash\nexec $ZENHOME/bin/python $ZENHOME/Products/ZenUtils/ZenBackup.py \"$@\"\n",
    "zeneventserver": "#! /usr/bin/env bash\n. $ZENHOME/bin/zenfunctions\nexec java -jar zep.jar \"$@\"\n",
}


def _write(path, data, mode=0o644, mtime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(data)
    os.chmod(path, mode)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def _write_entries(root, entries, mtime):
    """Files of gen_zenoss_bundle ``_Entry`` objects (name relative to ``root``)."""
    for entry in entries:
        path = os.path.join(root, entry.name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with contextlib.closing(entry.open()) as source, open(path, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        os.utime(path, (mtime, mtime))


def _etc(home, end, collector=None):
    conf = dict(GLOBAL_CONF)
    if collector:
        conf["monitor"] = collector
    text = "".join(f"{key} {value}\n" for key, value in conf.items())
    etc = os.path.join(home, "etc")
    _write(os.path.join(etc, "global.conf"), ("# Zenoss global settings\n" + text).encode(), 0o600, end)
    _write(os.path.join(etc, "zeneventserver.conf"), b"zep.jdbc.protocol=mysql\nzep.index.dir=var/zeneventserver\n",
           mtime=end)
    _write(os.path.join(etc, "zope.conf"), b"%define INSTANCE /opt/zenoss\ninstancehome $INSTANCE\n", mtime=end)
    _write(os.path.join(etc, "zenhub.conf"), b"monitor localhost\n", mtime=end)
    _write(os.path.join(etc, "hubpassword"), b"admin:zenoss\n", 0o600, end)
    _write(os.path.join(etc, "zenperfsnmp.conf.example"), b"# zenperfsnmp\ncycletime 300\n", mtime=end)
    os.symlink("zenperfsnmp.conf.example", os.path.join(etc, "zenperfsnmp.conf"))


def _bin(home, end):
    for name, text in BIN_SCRIPTS.items():
        _write(os.path.join(home, "bin", name), text.encode(), 0o755, end)
    _write(os.path.join(home, "bin", "python2.7"), b"\x7fELF stand-in for the bundled Python 2.7\n", 0o755, end)
    os.symlink("python2.7", os.path.join(home, "bin", "python"))


def _move_perf(build, collector, home):
    """The RRDs gen_zenoss_bundle wrote for ``collector`` into ``home``/perf."""
    staged = os.path.join(build.perf_root(collector), "perf")
    if os.path.isdir(staged):
        os.rename(staged, os.path.join(home, "perf"))
    else:
        os.makedirs(os.path.join(home, "perf", "Devices"))


def _collector_archives(build, out_dir):
    """Each remote collector's zenbackup archive, made from a collector home holding etc/ and perf/."""
    archives = []
    directory = os.path.join(out_dir, "collectors")
    os.makedirs(directory, exist_ok=True)
    for collector in build.collectors[1:]:
        home = os.path.join(build.stage, "homes", collector)
        _etc(home, build.end, collector)
        _move_perf(build, collector, home)
        path = os.path.join(directory, f"{HUB}-{collector}-perf-backup-{build.stamp}.tgz")
        write_collector_archive(home, path, now=build.end)
        archives.append(path)
    return archives


def _model_files(build, out_dir):
    model = os.path.join(out_dir, "model")
    paths = {"component_list": os.path.join(model, "componentList.txt"),
             "rrdpath_map": os.path.join(model, "rrdpath.map"),
             "dmd_uuid_file": os.path.join(model, "dmd_uuid.txt")}
    _write(paths["component_list"], _component_list(build.devices), mtime=build.end)
    _write(paths["rrdpath_map"], _rrdpath_map(build.devices), mtime=build.end)
    _write(paths["dmd_uuid_file"], f"{build.dmd_uuid}\n".encode(), mtime=build.end)
    return paths


def _dumps(build, out_dir, with_events, pad_events):
    dumps = os.path.join(out_dir, "dumps")
    os.makedirs(dumps, exist_ok=True)
    paths = {"zodb_dump": os.path.join(dumps, "zodb.sql.gz"),
             "zodb_session_dump": os.path.join(dumps, "zodb_session.sql.gz")}
    _write_zodb_dump(build, paths["zodb_dump"])
    _write_zodb_dump(build, paths["zodb_session_dump"], no_data=True)
    if with_events:
        paths["zep_dump"] = os.path.join(dumps, "zep.sql.gz")
        _write_zep_dump(build, paths["zep_dump"], pad_events)
    return paths


def build_home(out_dir, devices=3, rrds_per_device=4, seed=1, remote_collectors=0, pad_bytes=0, days=3,
               with_events=True, with_indexes=True, with_flexera=True, end=None):
    """Write a Zenoss 4 home, its dumps, model files and remote collector archives into ``out_dir``; describe them.

    Returns a dict: zenhome, component_list, rrdpath_map, dmd_uuid_file, dmd_uuid, zodb_dump, zodb_session_dump,
    zep_dump (absent without events), collector_archives (paths), rrd_count (local Devices RRDs),
    remote_rrd_count, devices [{id, path, collector, rrds}], end, seed.
    """
    opts = _Options(devices=devices, rrds_per_device=rrds_per_device, seed=seed, perf="tar", with_events=with_events,
                    with_indexes=with_indexes, with_flexera=with_flexera, remote_collectors=remote_collectors,
                    pad_bytes=pad_bytes, days=days)
    os.makedirs(out_dir, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".gen-zenoss-home-", dir=out_dir)
    try:
        build = _Build.create(opts, stage, DEFAULT_END if end is None else end)
        home = os.path.join(out_dir, "zenhome")
        os.makedirs(home)
        events_pad, index_pad = opts.pad_split()
        _etc(home, build.end)
        _bin(home, build.end)
        _write_entries(home, _zenpack_entries(), build.end)
        _write_rrds(build)
        _move_perf(build, LOCAL_COLLECTOR, home)
        var = os.path.join(home, "var")
        os.makedirs(var)
        if with_events and with_indexes:
            _write_entries(var, _zep_index_entries(build, index_pad), build.end)
            index_pad = 0
        if with_indexes:
            _write_entries(var, _catalog_entries(build, index_pad), build.end)
        if with_flexera:
            for name, data in _flexera_files(build):
                _write(os.path.join(var, "flexera", name), data, mtime=build.end)
        info = {"zenhome": home, "dmd_uuid": build.dmd_uuid, "end": build.end, "seed": seed}
        info.update(_model_files(build, out_dir))
        info.update(_dumps(build, out_dir, with_events, events_pad))
        info["collector_archives"] = _collector_archives(build, out_dir)
        info["devices"] = [{"id": d.id, "path": d.path, "collector": d.collector, "rrds": d.rrd_members()}
                           for d in build.devices]
        info["rrd_count"] = sum(len(d.rrd_members()) for d in build.devices if d.collector == LOCAL_COLLECTOR)
        info["remote_rrd_count"] = sum(len(d.rrd_members()) for d in build.devices if d.collector != LOCAL_COLLECTOR)
        return info
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build a Zenoss 4 $ZENHOME, its dumps and model files.")
    parser.add_argument("out_dir")
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--rrds-per-device", type=int, default=4)
    parser.add_argument("--remote-collectors", type=int, default=0)
    parser.add_argument("--pad-mb", type=float, default=0, help="MiB of incompressible bulk to add")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=3, help="days of RRD history")
    parser.add_argument("--end", type=int, help=f"epoch the data ends at (default {DEFAULT_END})")
    for part in ("events", "indexes", "flexera"):
        parser.add_argument(f"--no-{part}", action="store_true", help=f"leave out the {part}")
    args = parser.parse_args(argv)
    started = time.monotonic()
    info = build_home(args.out_dir, devices=args.devices, rrds_per_device=args.rrds_per_device, seed=args.seed,
                      remote_collectors=args.remote_collectors, pad_bytes=int(args.pad_mb * (1 << 20)),
                      days=args.days, with_events=not args.no_events, with_indexes=not args.no_indexes,
                      with_flexera=not args.no_flexera, end=args.end)
    json.dump(info, sys.stdout, indent=2)
    print()
    print(f"built {info['zenhome']} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
