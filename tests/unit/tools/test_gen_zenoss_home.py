"""tools/gen_zenoss_home.py: a Zenoss 4 home with real RRDs, dumps and model files that agree with each other."""
import gzip
import os
import tarfile

import rrdtool

from tools.gen_zenoss_home import build_home


def test_home_layout_dumps_model_and_collectors(tmp_path):
    info = build_home(str(tmp_path), devices=4, rrds_per_device=3, remote_collectors=1, seed=2)
    home = info["zenhome"]
    for path in ("etc/global.conf", "bin/zenoss", "ZenPacks/easy-install.pth", "perf/Devices", "perf/Daemons",
                 "var/zeneventserver/index/summary", "var/zencatalogservice/global_catalog/index", "var/flexera"):
        assert os.path.exists(os.path.join(home, path)), path
    assert os.path.islink(os.path.join(home, "bin", "python"))
    rrds = [os.path.join(top, name) for top, _d, files in os.walk(os.path.join(home, "perf", "Devices"))
            for name in files]
    assert len(rrds) == info["rrd_count"] > 0
    assert rrdtool.info(rrds[0])["step"] == 300
    with gzip.open(info["zodb_dump"]) as dump:
        assert b"\nINSERT INTO `object_state`" in dump.read()
    with gzip.open(info["zodb_session_dump"]) as dump:
        assert b"INSERT INTO" not in dump.read()
    mapped = open(info["rrdpath_map"]).read().splitlines()
    local = [d for d in info["devices"] if d["collector"] == "localhost"]
    assert all(any(line.startswith("Devices/%s|" % d["id"]) for line in mapped) for d in local)
    assert open(info["dmd_uuid_file"]).read() == info["dmd_uuid"] + "\n"
    assert "### components for " + info["devices"][0]["path"] in open(info["component_list"]).read()
    (archive,) = info["collector_archives"]
    assert os.path.basename(archive).startswith("localhost-collector1-perf-backup-")
    with tarfile.open(archive) as tar:
        perf = tarfile.open(fileobj=tar.extractfile("zenbackup/perf.tar"))
        assert sum(n.endswith(".rrd") and n.startswith("perf/Devices/") for n in perf.getnames()) \
            == info["remote_rrd_count"] > 0


def test_same_arguments_same_model(tmp_path):
    first = build_home(str(tmp_path / "a"), seed=9)
    second = build_home(str(tmp_path / "b"), seed=9)
    assert first["dmd_uuid"] == second["dmd_uuid"]
    assert open(first["rrdpath_map"]).read() == open(second["rrdpath_map"]).read()
    assert gzip.open(first["zodb_dump"]).read() == gzip.open(second["zodb_dump"]).read()
