"""Tests for tools/gen_zenoss_bundle.py: good bundles have the export4 layout, bad ones have their defect."""

import gzip
import hashlib
import io
import configparser
import json
import os
import posixpath
import re
import stat
import subprocess
import sys
import tarfile
import uuid
import zlib

import pytest
import rrdtool

from tools.gen_zenoss_bundle import VARIANTS, _GzipWriter, build_bundle, strip_definer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
EXPECTED_RRAS = [("AVERAGE", 1), ("AVERAGE", 6), ("AVERAGE", 24), ("AVERAGE", 288),
                 ("MAX", 6), ("MAX", 24), ("MAX", 288)]
# How each hostile member of the bad variants shows itself to a reader.
HOSTILE_CHECKS = {
    "traversal": lambda m: m.isreg() and posixpath.normpath(m.name).startswith("../"),
    "absolute_path": lambda m: m.name.startswith("/"),
    "symlink_outside": lambda m: m.issym() and m.linkname.startswith("../"),
    "hardlink_outside": lambda m: m.islnk() and m.linkname.startswith("../"),
    "device_file": lambda m: m.ischr() or m.isblk(),
    "fifo": lambda m: m.isfifo(),
    "setuid": lambda m: m.isreg() and bool(m.mode & (stat.S_ISUID | stat.S_ISGID)),
}


def member_bytes(info, name):
    with tarfile.open(info["path"], "r:") as tar:
        return tar.extractfile(name).read()


def open_tgz(info):
    return tarfile.open(fileobj=io.BytesIO(member_bytes(info, info["tgz_name"])), mode="r:gz")


def tgz_member_bytes(info, name):
    with open_tgz(info) as tgz:
        return tgz.extractfile(name).read()


def nested_names(data, mode="r:"):
    with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as tar:
        return tar.getnames()


def read_everything(tar):
    """Read every member's data, as an extraction would."""
    for member in tar:
        if member.isreg():
            tar.extractfile(member).read()


@pytest.fixture(scope="module", name="good")
def fixture_good(tmp_path_factory):
    # 8 RRDs per device cover GAUGE, DERIVE, COUNTER and a _GAUGE-suffixed name.
    return build_bundle(str(tmp_path_factory.mktemp("good")), devices=3, rrds_per_device=8, remote_collectors=1)


def test_outer_tar_layout(good):
    assert re.fullmatch(r"4x-export-\d{8}-\d{6}\.tar", os.path.basename(good["path"]))
    assert os.listdir(os.path.dirname(good["path"])) == [os.path.basename(good["path"])]  # no stage, no .part
    with open(good["path"], "rb") as fileobj:
        assert fileobj.read(2) != b"\x1f\x8b"  # an uncompressed tar
    with tarfile.open(good["path"], "r:") as tar:
        assert tar.getnames() == good["members"]
        assert all(m.uname == "zenoss" for m in tar.getmembers())
        assert [m.name for m in tar.getmembers() if m.isdir()] == ["flexera"]
    stamp = re.search(r"\d{8}-\d{6}", os.path.basename(good["path"])).group()
    # export4's make_export_tar order: one `tar -C <dir> -rf` each
    assert good["members"] == [
        "componentList.txt", "rrdpath.map", "dmd_uuid.txt", f"localhost-collector1-perf-backup-{stamp}.tgz",
        "flexera", "flexera/zenoss_rm.lic", "flexera/tsf_zenoss.data", "zenbackup_4x.tgz", "backup.md5",
    ]
    assert good["tgz_name"] == "zenbackup_4x.tgz"
    with open(good["path"], "rb") as fileobj:
        data = fileobj.read()
    assert b"flexera/\0" in data  # the directory's header, as tar -rf writes it


def test_backup_md5_matches_tgz(good):
    digest = hashlib.md5(member_bytes(good, good["tgz_name"])).hexdigest()
    assert good["md5"] == good["md5_recorded"] == digest
    # md5sum -b of the absolute path where export4 had zenbackup write the archive
    assert re.fullmatch(r"/home/zenoss/tmp[a-z0-9_]{6}/backups/zenbackup_4x\.tgz", good["md5_path"])
    assert member_bytes(good, "backup.md5").decode() == f"{digest} *{good['md5_path']}\n"


def test_older_dated_tgz_name(tmp_path):
    old = build_bundle(str(tmp_path), devices=1, rrds_per_device=1, tgz_name="dated", export_dir="/srv/x")
    assert old["tgz_name"] == "zenbackup_20180601.tgz" and old["tgz_name"] in old["members"]
    assert member_bytes(old, "backup.md5").decode() == f"{old['md5']} */opt/zenoss/backups/zenbackup_20180601.tgz\n"
    moved = build_bundle(str(tmp_path / "m"), devices=1, rrds_per_device=1, export_dir="/srv/export/")
    assert moved["md5_path"].startswith("/srv/export/tmp")


def test_text_members(good):
    assert member_bytes(good, "dmd_uuid.txt").decode() == good["dmd_uuid"] + "\n"
    uuid.UUID(good["dmd_uuid"])
    expected = []
    for device in good["devices"]:
        assert re.fullmatch(r"/zport/dmd/Devices/[\w/]+/devices/\w+", device["path"])
        expected += [f"### components for {device['path']}"] + device["components"]
    assert member_bytes(good, "componentList.txt").decode().splitlines() == expected
    # rrdpath.map: "<rrdPath()>|<primary path>" for every device and every monitored component, RRDs or not
    lines = member_bytes(good, "rrdpath.map").decode().splitlines()
    objects = [path for device in good["devices"] for path in [device["path"]] + device["components"]]
    assert [line.split("|")[1] for line in lines] == objects
    for line in lines:
        perf_dir, object_path = line.split("|")
        assert perf_dir == "Devices/" + object_path.split("/devices/", 1)[1]


def test_zenbackup_tgz_members(good):
    with open_tgz(good) as tgz:
        names = tgz.getnames()
        assert names == good["zenbackup_members"]
        for member in tgz:
            assert member.isdir() or member.isreg()
            assert not any(check(member) for check in HOSTILE_CHECKS.values())
        assert tgz.getmember("zenbackup").isdir() and tgz.getmember("zenbackup").mode == 0o750
    # tar czfC <out> <tmp> zenbackup: the directory, then what ZenBackup.makeBackup wrote, in its order
    assert names == ["zenbackup"] + ["zenbackup/" + name for name in (
        "backup.settings", "zep.sql.gz", "zep.tar", "etc.tar", "zodb.sql.gz", "zodb_session.sql.gz", "ZenPacks.tar",
        "bin.tar", "zencatalogservice.tar", "perf.tar")]


def test_backup_settings_and_small_tars(good):
    settings = configparser.ConfigParser()
    settings.read_string(tgz_member_bytes(good, "zenbackup/backup.settings").decode())
    assert settings.sections() == ["zenbackup"]
    assert dict(settings["zenbackup"]) == {
        "zodb_host": "localhost", "zodb_port": "3306", "zodb_db": "zodb", "zodb_user": "zenoss",
        "zodb_password": "zenoss", "zepdbhost": "localhost", "zepdbport": "3306", "zepdbname": "zenoss_zep",
        "zepdbuser": "zenoss", "zepdbpass": "zenoss"}
    etc = nested_names(tgz_member_bytes(good, "zenbackup/etc.tar"))
    assert etc[0] == "etc" and "etc/global.conf" in etc
    assert nested_names(tgz_member_bytes(good, "zenbackup/bin.tar"))[0] == "bin"


def test_perf_tar_is_zenhome_perf(good):
    """tar chfC perf.tar $ZENHOME perf: the perf directory, each directory before what it holds."""
    names = nested_names(tgz_member_bytes(good, "zenbackup/perf.tar"))
    assert names[0] == "perf" and {"perf/Daemons", "perf/Devices"} <= set(names)
    for index, name in enumerate(names[1:], 1):
        assert posixpath.dirname(name) in names[:index]
    daemons = [n for n in names if n.startswith("perf/Daemons/") and n.endswith(".rrd")]
    assert daemons and all(re.fullmatch(r"perf/Daemons/zen\w+/localhost_\w+\.rrd", n) for n in daemons)


def test_remote_collector_archive_is_a_zenbackup(good, tmp_path):
    """zenbackup --no-eventsdb --no-zodb on the collector: zenbackup/etc.tar and zenbackup/perf.tar only."""
    archive = good["remote_archives"][0]
    data = member_bytes(good, archive)
    assert nested_names(data, "r:gz") == good["remote_members"][archive] == [
        "zenbackup", "zenbackup/etc.tar", "zenbackup/perf.tar"]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        perf = tar.extractfile("zenbackup/perf.tar").read()
        assert b"monitor collector1" in tar.extractfile("zenbackup/etc.tar").read()
    rrds = extract_rrds(perf, "r:", tmp_path)
    devices = [n for n in rrds if n.startswith("perf/Devices/")]
    assert len(devices) == good["remote_rrd_count"] == 8
    assert len(rrds) - len(devices) == good["remote_daemon_rrd_count"] == 4
    assert all(n.startswith("perf/Daemons/") and "/collector1_" in n for n in rrds if n not in devices)


def test_remote_collector_bare_layout(tmp_path):
    bare = build_bundle(str(tmp_path), devices=2, rrds_per_device=2, remote_collectors=1, remote_layout="bare",
                        with_daemons=False)
    names = nested_names(member_bytes(bare, bare["remote_archives"][0]), "r:gz")
    assert [n for n in names if n.endswith(".rrd")] == bare["devices"][1]["rrds"] and names[0] == "perf"


def test_dumps_as_zenbackup_writes_them(good):
    zep_gz = tgz_member_bytes(good, "zenbackup/zep.sql.gz")
    assert zep_gz[3] & 0x08 and zep_gz[10:18] == b"zep.sql\0"  # Python's gzip module names the file
    zodb_gz = tgz_member_bytes(good, "zenbackup/zodb.sql.gz")
    assert not zodb_gz[3] & 0x08  # gzip -c of a pipe: no name
    zep = gzip.decompress(zep_gz).decode()
    assert "DEFINER" not in zep  # strip_definer
    assert "DELIMITER ;;\n/*!50003 CREATE*/  /*!50003 PROCEDURE `event_archive_purge`()\nBEGIN" in zep
    session = gzip.decompress(tgz_member_bytes(good, "zenbackup/zodb_session.sql.gz")).decode()
    assert "CREATE TABLE `object_state`" in session and "INSERT INTO" not in session  # --no-data


@pytest.mark.parametrize("line, expected", [
    ("/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER t */;;\n",
     "/*!50003 CREATE*/  /*!50003 TRIGGER t */;;\n"),
    ("/*!50001 VIEW `v` AS select 1 */;\n", "/*!50001 VIEW `v` AS select 1 */;\n"),
    ("CREATE DEFINER=`root`@`localhost` PROCEDURE p()\n", "CREATE DEFINER=`root`@`localhost` PROCEDURE p()\n"),
    ("/* " + "x" * 500 + " DEFINER=`a`@`b` */\n", "/* " + "x" * 500 + " DEFINER=`a`@`b` */\n"),  # > 500: kept
])
def test_strip_definer_is_zenbackups(line, expected):
    assert strip_definer(line) == expected


def test_tgz_is_one_plain_gzip_member(good):
    data = member_bytes(good, good["tgz_name"])
    inflate = zlib.decompressobj(wbits=31)
    inflate.decompress(data)
    assert inflate.eof and not inflate.unused_data


def test_sql_dumps(good):
    zodb = gzip.decompress(tgz_member_bytes(good, "zenbackup/zodb.sql.gz")).decode()
    assert zodb.startswith("-- MySQL dump")
    assert "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;" in zodb
    assert "CREATE TABLE `object_state`" in zodb
    assert re.search(r"INSERT INTO `object_state` VALUES \(0,\d+,\d+,0x[0-9a-f]+\)", zodb)
    zep = gzip.decompress(tgz_member_bytes(good, "zenbackup/zep.sql.gz")).decode()
    for table in ("event_summary", "event_archive"):
        assert f"CREATE TABLE `{table}`" in zep
        assert f"INSERT INTO `{table}` VALUES (0x" in zep
    assert zep.rstrip().splitlines()[-1].startswith("-- Dump completed on")


def test_nested_tars(good):
    zenpacks = nested_names(tgz_member_bytes(good, "zenbackup/ZenPacks.tar"))
    eggs = {name.split("/")[1] for name in zenpacks if name.count("/") >= 1 and name.endswith(".egg")}
    assert len(eggs) >= 3 and all(re.fullmatch(r"ZenPacks\.zenoss\.\w+-[\d.]+-py2\.7\.egg", egg) for egg in eggs)
    assert all(n.startswith("zeneventserver/index/") or n in ("zeneventserver", "zeneventserver/index")
               for n in nested_names(tgz_member_bytes(good, "zenbackup/zep.tar")))
    assert "zencatalogservice/global_catalog/index/segments.gen" in nested_names(
        tgz_member_bytes(good, "zenbackup/zencatalogservice.tar"))


def extract_rrds(data, mode, dest):
    with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as tar:
        tar.extractall(dest, filter="data")
        return sorted(n for n in tar.getnames() if n.endswith(".rrd"))


def remote_perf_tar(info, archive):
    with tarfile.open(fileobj=io.BytesIO(member_bytes(info, archive)), mode="r:gz") as tar:
        return tar.extractfile("zenbackup/perf.tar").read()


def test_rrds_are_real_and_filled(good, tmp_path):
    local = extract_rrds(tgz_member_bytes(good, "zenbackup/perf.tar"), "r:", tmp_path / "local")
    remote = extract_rrds(remote_perf_tar(good, good["remote_archives"][0]), "r:", tmp_path / "remote")
    daemons = [n for n in local + remote if n.startswith("perf/Daemons/")]
    assert len(daemons) == good["daemon_rrd_count"] == 8
    local = [n for n in local if n not in daemons]
    remote = [n for n in remote if n not in daemons]
    assert len(local) + len(remote) == good["rrd_count"] == 24 and len(remote) == good["remote_rrd_count"] == 8
    assert sorted(local + remote) == sorted(rrd for device in good["devices"] for rrd in device["rrds"])
    assert any(name.endswith("_GAUGE.rrd") for name in local)
    assert all(re.fullmatch(r"perf/Devices/\w+/([\w/]+/)?\w+\.rrd", name) for name in local + remote)
    types = set()
    for name in local + remote:
        path = str(tmp_path / ("local" if name in local else "remote") / name)
        info = rrdtool.info(path)
        types.add(info["ds[ds0].type"])
        assert info["step"] == 300 and info["last_update"] == good["end"]
        assert [(info[f"rra[{i}].cf"], info[f"rra[{i}].pdp_per_row"]) for i in range(7)] == EXPECTED_RRAS
        assert "rra[7].cf" not in info and all(info[f"rra[{i}].rows"] == 600 for i in range(7))
        rows = rrdtool.fetch(path, "AVERAGE", "--start", str(good["end"] - 86400), "--end", str(good["end"]))[2]
        values = [row[0] for row in rows if row[0] is not None]
        assert len(values) > 200 and min(values) >= 0
    assert types == {"GAUGE", "DERIVE", "COUNTER"}


def test_perf_variants_and_optional_parts(tmp_path):
    gz = build_bundle(str(tmp_path / "gz"), devices=2, rrds_per_device=2, perf="tar.gz")
    assert "zenbackup/perf.tar.gz" in gz["zenbackup_members"] and "zenbackup/perf.tar" not in gz["zenbackup_members"]
    assert sum(n.endswith(".rrd") for n in nested_names(tgz_member_bytes(gz, "zenbackup/perf.tar.gz"), "r:gz")) == 8
    bare = build_bundle(str(tmp_path / "bare"), devices=2, perf="none", remote_collectors=2, with_events=False,
                        with_indexes=False, with_flexera=False, with_rrdpath_map=False)
    assert bare["members"] == ["componentList.txt", "dmd_uuid.txt", bare["tgz_name"], "backup.md5"]
    assert bare["zenbackup_members"] == ["zenbackup"] + ["zenbackup/" + name for name in (
        "backup.settings", "etc.tar", "zodb.sql.gz", "zodb_session.sql.gz", "ZenPacks.tar", "bin.tar")]
    assert bare["daemon_rrd_count"] == 0
    assert bare["rrd_count"] == 0 and bare["remote_archives"] == []


def test_same_seed_same_bytes(tmp_path):
    first, second, other = (build_bundle(str(tmp_path / d), perf="none", seed=s) for d, s in
                            (("a", 7), ("b", 7), ("c", 8)))
    with open(first["path"], "rb") as a, open(second["path"], "rb") as b:
        assert a.read() == b.read()
    assert other["dmd_uuid"] != first["dmd_uuid"]


def test_padding_is_incompressible_and_split(tmp_path):
    base = build_bundle(str(tmp_path / "base"), devices=1, rrds_per_device=1)
    pad = 3 << 20
    padded = build_bundle(str(tmp_path / "padded"), devices=1, rrds_per_device=1, pad_bytes=pad)
    assert pad <= padded["size"] - base["size"] <= pad + (1 << 20)
    with open(padded["path"], "rb") as fileobj:
        data = fileobj.read()
    assert len(zlib.compress(data, 1)) > 0.9 * len(data)
    with open_tgz(padded) as tgz:
        read_everything(tgz)  # the whole gzip stream inflates and its CRC holds
        sizes = {m.name: m.size for m in tgz}
    assert sizes["zenbackup/zep.sql.gz"] >= pad // 5 and sizes["zenbackup/zep.tar"] >= pad // 2
    events = gzip.decompress(tgz_member_bytes(padded, "zenbackup/zep.sql.gz")).decode()
    assert events.count('{"snmp.varbinds":["') >= 10 and events.endswith("\n")
    catalog_only = build_bundle(str(tmp_path / "catalog"), devices=1, perf="none", with_events=False, pad_bytes=pad)
    with open_tgz(catalog_only) as tgz:
        assert tgz.getmember("zenbackup/zencatalogservice.tar").size >= pad


def test_gzip_writer_level_switches_keep_one_member():
    chunks = [b"model " * 5000, os.urandom(100_000), b"events " * 5000]
    out = io.BytesIO()
    writer = _GzipWriter(out, 6, 0)
    for level, chunk in zip((6, 0, 1), chunks):
        writer.set_level(level)
        writer.write(chunk)
    writer.close()
    inflate = zlib.decompressobj(wbits=31)
    assert inflate.decompress(out.getvalue()) == b"".join(chunks)
    assert inflate.eof and not inflate.unused_data
    assert writer.compressed_size == len(out.getvalue())


def test_invalid_arguments(tmp_path):
    for kwargs in ({"perf": "zip"}, {"variant": "nope"}, {"devices": 0},
                   {"pad_bytes": 1, "with_events": False, "with_indexes": False},
                   {"variant": "both_perf", "perf": "none"}, {"name": "../x"}, {"tgz_name": "x"},
                   {"remote_layout": "x"}, {"export_dir": "relative"}):
        with pytest.raises(ValueError):
            build_bundle(str(tmp_path), **kwargs)
    assert [p for p in os.listdir(tmp_path) if not p.startswith("4x-")] == []


def test_cli(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "gen_zenoss_bundle.py"), str(tmp_path), "--devices", "2",
         "--rrds-per-device", "1", "--perf", "tar.gz", "--remote-collectors", "1", "--pad-mb", "0.5",
         "--name", "demo"],
        check=True, capture_output=True, text=True,
    )
    info = json.loads(result.stdout)
    assert info["path"] == str(tmp_path / "demo.tar") and os.path.getsize(info["path"]) == info["size"]
    assert info["rrd_count"] == 2 and info["remote_rrd_count"] == 1
    assert info["size"] > 512 << 10


# --- bad variants ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", name="bad")
def fixture_bad(tmp_path_factory):
    """Build a small bundle of each variant on demand, once per module."""
    root = tmp_path_factory.mktemp("bad")
    built = {}

    def get(variant):
        if variant not in built:
            built[variant] = build_bundle(str(root / variant), devices=1, rrds_per_device=1, variant=variant)
        return built[variant]
    return get


def test_every_variant_is_tested():
    tested = {"md5_mismatch", "missing_md5", "missing_zenpacks", "missing_zodb", "both_perf", "truncated",
              "zodb_no_insert", "corrupt_gzip", "corrupt_gzip_md5_ok"}
    tested |= set(HOSTILE_CHECKS) | {f"tgz_{k}" for k in HOSTILE_CHECKS}
    assert set(VARIANTS) == tested


def test_md5_mismatch(bad):
    info = bad("md5_mismatch")
    assert re.fullmatch(r"[0-9a-f]{32}", info["md5_recorded"]) and info["md5_recorded"] != info["md5"]
    assert member_bytes(info, "backup.md5").decode().split()[0] == info["md5_recorded"]
    assert hashlib.md5(member_bytes(info, info["tgz_name"])).hexdigest() == info["md5"]


def test_missing_md5(bad):
    info = bad("missing_md5")
    assert "backup.md5" not in info["members"] and info["md5_recorded"] is None
    with tarfile.open(info["path"], "r:") as tar:
        assert "backup.md5" not in tar.getnames()


@pytest.mark.parametrize("variant, absent", [("missing_zenpacks", "zenbackup/ZenPacks.tar"),
                                             ("missing_zodb", "zenbackup/zodb.sql.gz")])
def test_missing_required_member(bad, variant, absent):
    with open_tgz(bad(variant)) as tgz:
        names = tgz.getnames()
    assert absent not in names and len(names) >= 5


def test_zodb_no_insert(bad):
    zodb = gzip.decompress(tgz_member_bytes(bad("zodb_no_insert"), "zenbackup/zodb.sql.gz")).decode()
    assert "CREATE TABLE `object_state`" in zodb and "INSERT INTO" not in zodb


def test_both_perf(bad):
    with open_tgz(bad("both_perf")) as tgz:
        assert {"zenbackup/perf.tar", "zenbackup/perf.tar.gz"} <= set(tgz.getnames())


def test_truncated(bad, tmp_path):
    info = bad("truncated")
    whole = build_bundle(str(tmp_path), devices=1, rrds_per_device=1)
    assert info["size"] == os.path.getsize(info["path"]) == whole["size"] // 2 | 1
    with pytest.raises(tarfile.ReadError):
        with tarfile.open(info["path"], "r:") as tar:
            read_everything(tar)


@pytest.mark.parametrize("variant", ["corrupt_gzip", "corrupt_gzip_md5_ok"])
def test_corrupt_gzip(bad, variant):
    info = bad(variant)
    data = member_bytes(info, info["tgz_name"])
    assert hashlib.md5(data).hexdigest() == info["md5"]
    assert (info["md5_recorded"] == info["md5"]) == (variant == "corrupt_gzip_md5_ok")
    with pytest.raises((OSError, EOFError, zlib.error, tarfile.TarError)):
        gzip.decompress(data)


@pytest.mark.parametrize("kind", sorted(HOSTILE_CHECKS))
@pytest.mark.parametrize("in_tgz", [False, True], ids=["outer", "tgz"])
def test_hostile_member(bad, kind, in_tgz):
    info = bad(f"tgz_{kind}" if in_tgz else kind)
    with tarfile.open(info["path"], "r:") as outer:
        outer_hits = [m.name for m in outer if HOSTILE_CHECKS[kind](m)]
    with open_tgz(info) as tgz:
        tgz_hits = [m.name for m in tgz if HOSTILE_CHECKS[kind](m)]
    assert (len(outer_hits), len(tgz_hits)) == ((0, 1) if in_tgz else (1, 0))
    assert hashlib.md5(member_bytes(info, info["tgz_name"])).hexdigest() == info["md5_recorded"]
