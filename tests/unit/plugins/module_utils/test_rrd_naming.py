# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RRD conversion: metric naming (NAV, Zenoss), file selection and whisper layout planning."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import random
import re
import subprocess
import sys
import zlib
from types import SimpleNamespace

import pytest
import whisper

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import readable
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import (
    DoneLog,
    balanced_group_size,
    file_stamp,
    in_shard,
    relative_files,
)
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.convert import pending_files
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.layout import plan_layout
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.naming import (
    NavNames,
    ZenossNames,
    find_upwards,
    resource_key,
    load_mapping,
    nav_escape,
    read_rrdpath_map,
    read_tenant,
    zenoss_escape,
)

T0 = 1735689600
ETH0 = "Devices/dev1/os/interfaces/eth0"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


# -- escaping --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("sw1.example.org", "sw1_example_org"),
    ("Gi1/0/1", "Gi1_0_1"),
    ("port (uplink), a", "port__uplink___a"),
    ("plain-name_1:x", "plain-name_1:x"),
])
def test_nav_escape(text, expected):
    assert nav_escape(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("dev1/ifInOctets_ifInOctets", "dev1/ifInOctets_ifInOctets"),
    ("a-b_c.d/e", "a-b_c.d/e"),
    ("my dev:1 (x)", "my-dev-1--x-"),
    ("caf\u00e9", "caf-"),
])
def test_zenoss_escape(text, expected):
    assert zenoss_escape(text) == expected


# -- NAV names -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("relative", ["ipdevpoll/sw1.example.org/ports/Gi1(0,1).rrd",
                                      "ipdevpoll/sw1.example.org/ports/Gi1(0,1).rrd.xml",
                                      "ipdevpoll/sw1.example.org/ports/Gi1(0,1).rrd.xml.gz"])
def test_nav_default_metric_escapes_every_element(relative):
    names = NavNames(prefix="nav.")
    assert names.metric(relative, "ifIn Octets") == "nav.ipdevpoll.sw1_example_org.ports.Gi1_0_1_.ifIn_Octets"
    assert NavNames().metric(relative, "x") == "ipdevpoll.sw1_example_org.ports.Gi1_0_1_.x"


@pytest.mark.parametrize("unmapped, expected_other", [("default", "nav.other.b.ds0"), ("skip", None)])
def test_nav_mapping(unmapped, expected_other):
    mapping = {("ports/a.rrd", "ifInOctets"): "nav.exact.in", ("ports/a.rrd", ""): "nav.prefix",
               ("sys/c.rrd", "load"): "nav.load"}
    names = NavNames(prefix="nav", mapping=mapping, unmapped=unmapped)
    assert names.metric("ports/a.rrd", "ifInOctets") == "nav.exact.in"  # exact (path, ds) wins
    assert names.metric("ports/a.rrd", "if.Out Octets") == "nav.prefix.if_Out_Octets"
    assert names.metric("sys/c.rrd", "other") == ("nav.sys.c.other" if unmapped == "default" else None)
    assert names.metric("other/b.rrd", "ds0") == expected_other


# -- mapping files ---------------------------------------------------------------------------------------------
def test_load_csv_mapping(tmp_path):
    root = tmp_path / "rrd"
    path = write(tmp_path / "map.csv", "\n".join([
        "rrd_path,ds,metric",
        "# a comment",
        "",
        "ports/a.rrd, ifInOctets , nav.a.in",
        "ports/b.rrd,nav.b",
        "%s,nav.c" % (root / "sys" / "c.rrd"),
        "./ports/d.rrd,,nav.d",
        ",,",
    ]) + "\n")
    assert load_mapping(path, str(root)) == {
        ("ports/a.rrd", "ifInOctets"): "nav.a.in",
        ("ports/b.rrd", ""): "nav.b",
        ("sys/c.rrd", ""): "nav.c",
        ("ports/d.rrd", ""): "nav.d",
    }


@pytest.mark.parametrize("header", ["rrd_path,metric", "RRD,Metric"])
def test_two_column_csv_header_is_skipped(tmp_path, header):
    path = write(tmp_path / "map.csv", "%s\na.rrd,nav.a\n" % header)
    assert load_mapping(path, str(tmp_path)) == {("a.rrd", ""): "nav.a"}


@pytest.mark.parametrize("bad_row", ["only-one-column", "a.rrd,ds,metric,0.1,extra", ",nav.x", "a.rrd,ds,"])
def test_bad_csv_row_names_its_line(tmp_path, bad_row):
    path = write(tmp_path / "map.csv", "rrd_path,metric\na.rrd,nav.a\n\n%s\n" % bad_row)
    with pytest.raises(FerryError, match="line 4"):
        load_mapping(path, str(tmp_path))


# What PostgreSQL's COPY (...) TO STDOUT WITH (FORMAT csv, HEADER) wrote for docs/nav.md's query on NAV 3's tables
# (PostgreSQL 15): paths holding commas quoted, a quote inside a field doubled, NULL scales empty.
NAV_COPY_CSV = "\n".join([
    'rrd_path,ds,metric,scale',
    '"/var/lib/nav/rrd/sw-01.oslo.example.org/ports/Port-channel 2 (sw-02.oslo, lacp).rrd",ds0,'
    'nav.devices.sw-01_oslo_example_org.ports.Port-channel_2__sw-02_oslo__lacp_.ifInOctets,',
    '/var/lib/nav/rrd/sw-01.oslo.example.org/ports/Gi0_1.rrd,ds0,nav.devices.sw-01_oslo_example_org.ports.Gi0_1.ifInErrors,',
    '"/var/lib/nav/rrd/sw-01.oslo.example.org/sensors (chassis 1, slot 0)/temperature.rrd",ds0,'
    '"nav.devices.sw-01_oslo_example_org.sensors.inlet_""A""",0.1',
]) + "\n"


def test_quoted_csv_as_postgresql_copy_writes_it(tmp_path):
    """docs/nav.md's query writes CSV with COPY: a path holding commas is one quoted field."""
    mapping = load_mapping(write(tmp_path / "nav-metrics.csv", NAV_COPY_CSV), "/var/lib/nav/rrd")
    sensors = "sw-01.oslo.example.org/sensors (chassis 1, slot 0)/temperature.rrd"
    assert mapping == {
        ("sw-01.oslo.example.org/ports/Port-channel 2 (sw-02.oslo, lacp).rrd", "ds0"):
            "nav.devices.sw-01_oslo_example_org.ports.Port-channel_2__sw-02_oslo__lacp_.ifInOctets",
        ("sw-01.oslo.example.org/ports/Gi0_1.rrd", "ds0"): "nav.devices.sw-01_oslo_example_org.ports.Gi0_1.ifInErrors",
        (sensors, "ds0"): 'nav.devices.sw-01_oslo_example_org.sensors.inlet_"A"',
    }
    assert mapping.scales == {(sensors, "ds0"): 0.1}
    assert NavNames("", mapping).scale(sensors, "ds0") == 0.1


def test_unquoted_paths_holding_commas_are_joined_again(tmp_path):
    """A file from the old guide's psql -At -F, (nothing quoted): the path is the fields up to the one ending in .rrd."""
    text = "\n".join([
        "/var/lib/nav/rrd/sw1/sensors (chassis 1, slot 0)/temperature.rrd,ds0,nav.devices.sw1.sensors.t,0.1",
        "sw1/ports/xe-1_0_0 (core, uplink).rrd,nav.devices.sw1.ports.xe",
        "sw1/ports/a, b, c.rrd.xml.gz,ds1,nav.abc,",
        "sw1/cpu.rrd,ds0,nav.devices.sw1.cpu",
    ]) + "\n"
    mapping = load_mapping(write(tmp_path / "old.csv", text), "/var/lib/nav/rrd")
    assert mapping == {
        ("sw1/sensors (chassis 1, slot 0)/temperature.rrd", "ds0"): "nav.devices.sw1.sensors.t",
        ("sw1/ports/xe-1_0_0 (core, uplink).rrd", ""): "nav.devices.sw1.ports.xe",
        ("sw1/ports/a, b, c.rrd", "ds1"): "nav.abc",  # a dump's name keys its RRD
        ("sw1/cpu.rrd", "ds0"): "nav.devices.sw1.cpu",
    }
    assert mapping.scales == {("sw1/sensors (chassis 1, slot 0)/temperature.rrd", "ds0"): 0.1}


def test_bad_rows_are_named_by_the_line_they_start_on(tmp_path):
    """A quoted field may span lines: the line named is the file's, not the row's number."""
    text = 'rrd_path,ds,metric\n"a\nb.rrd",ds0,nav.a\nc.rrd,ds0,nav.c\nd.rrd,ds0,nav.d,1,extra\n'
    with pytest.raises(FerryError, match=r"line 5: expected rrd_path,metric or rrd_path,ds,metric\[,scale\], got 5 field"):
        load_mapping(write(tmp_path / "map.csv", text), str(tmp_path))


@pytest.mark.parametrize("text, line", [
    ('rrd_path,ds,metric\na.rrd,ds0,nav.a\n"b.rrd,ds0,nav.b\nc.rrd,ds0,nav.c\n', 3),  # never closed
    ('rrd_path,ds,metric\n"a.rrd"x,ds0,nav.a\n', 2),  # text after the closing quote
])
def test_broken_quoting_is_refused_naming_its_line(tmp_path, text, line):
    with pytest.raises(FerryError, match=r"line %d: .*expected rrd_path,metric or rrd_path,ds,metric.*quote" % line):
        load_mapping(write(tmp_path / "map.csv", text), str(tmp_path))


def test_absolute_paths_are_under_the_root_given_not_the_tree_converted(tmp_path):
    """NAV stores the NAV 3 host's paths: converted elsewhere (shipped, dumped), they are still under that root."""
    path = write(tmp_path / "map.csv", "/var/lib/nav/rrd/sw1/cpu.rrd,ds0,nav.cpu\n")
    assert load_mapping(path, "/var/lib/nav/rrd") == {("sw1/cpu.rrd", "ds0"): "nav.cpu"}
    names = NavNames(mapping=load_mapping(path, "/var/lib/nav/rrd"), unmapped="skip")
    assert names.metric("sw1/cpu.rrd.xml.gz", "ds0") == "nav.cpu"


def test_scales_from_csv_and_yaml(tmp_path):
    """NAV 3 stored sensor readings unscaled (314 for 31.4 C); a fourth column or a scale key fixes them."""
    csv_map = load_mapping(write(tmp_path / "map.csv", "s.rrd,ds0,nav.t,0.1\ns.rrd,ds1,nav.u\n"), str(tmp_path))
    names = NavNames("", csv_map)
    assert (names.scale("s.rrd", "ds0"), names.scale("s.rrd", "ds1"), names.scale("x.rrd", "ds0")) == (0.1, 1.0, 1.0)
    yaml_map = load_mapping(write(tmp_path / "map.yml", "s.rrd:\n  ds0: {metric: nav.t, scale: 0.01}\n  ds1: nav.u\n"),
                            str(tmp_path))
    assert yaml_map == {("s.rrd", "ds0"): "nav.t", ("s.rrd", "ds1"): "nav.u"}
    assert NavNames("", yaml_map).scale("s.rrd", "ds0") == 0.01
    for bad in ("zero", "0", "inf"):
        with pytest.raises(FerryError, match="invalid scale"):
            load_mapping(write(tmp_path / "bad.csv", "s.rrd,ds0,nav.t,%s\n" % bad), str(tmp_path))


def test_path_mapped_twice_to_different_metrics_is_refused(tmp_path):
    same_twice = write(tmp_path / "same.csv", "a.rrd,nav.a\n./a.rrd,nav.a\n")
    assert load_mapping(same_twice, str(tmp_path)) == {("a.rrd", ""): "nav.a"}
    conflict = write(tmp_path / "conflict.csv", "a.rrd,ds0,nav.a\n./a.rrd,ds0,nav.b\n")
    with pytest.raises(FerryError, match="a.rrd"):
        load_mapping(conflict, str(tmp_path))


def test_load_yaml_mapping(tmp_path):
    root = tmp_path / "rrd"
    path = write(tmp_path / "map.yml", "\n".join([
        "ports/a.rrd: nav.a",
        "ports/b.rrd:",
        "  ifInOctets: nav.b.in",
        "  ifOutOctets: nav.b.out",
        "%s: nav.c" % (root / "sys" / "c.rrd"),
    ]) + "\n")
    assert load_mapping(path, str(root)) == {
        ("ports/a.rrd", ""): "nav.a",
        ("ports/b.rrd", "ifInOctets"): "nav.b.in",
        ("ports/b.rrd", "ifOutOctets"): "nav.b.out",
        ("sys/c.rrd", ""): "nav.c",
    }


@pytest.mark.parametrize("text", ["a.rrd: [unclosed\n", "- a.rrd\n- b.rrd\n", "a.rrd: [1, 2]\n"])
def test_bad_yaml_mapping_is_refused(tmp_path, text):
    path = write(tmp_path / "map.yaml", text)
    with pytest.raises(FerryError, match=re.escape(path)):
        load_mapping(path, str(tmp_path))


def test_missing_mapping_file(tmp_path):
    with pytest.raises(FerryError, match="missing.csv"):
        load_mapping(str(tmp_path / "missing.csv"), str(tmp_path))


def test_mapping_file_drives_nav_names(tmp_path):
    path = write(tmp_path / "map.csv", "ports/a.rrd,nav.ports.a\n")
    names = NavNames(mapping=load_mapping(path, str(tmp_path)), unmapped="skip")
    assert names.metric("ports/a.rrd", "ifInOctets") == "nav.ports.a.ifInOctets"
    assert names.metric("ports/b.rrd", "ifInOctets") is None


# -- Zenoss names ----------------------------------------------------------------------------------------------
def test_zenoss_fields_of_an_interface_file():
    fields = ZenossNames("tenant-1").fields(ETH0 + "/ifInOctets_ifInOctets.rrd")
    assert fields["device"] == "dev1"
    assert fields["name"] == "ifInOctets_ifInOctets"
    assert fields["key"] == fields["dir"] == ETH0
    assert fields["path"] == ETH0 + "/ifInOctets_ifInOctets"
    assert fields["tenant"] == "tenant-1"


def test_zenoss_key_comes_from_the_rrdpath_map():
    # Zenoss 5 queries Devices/<path below the device class's devices relation> (MetricMixin.getResourceKey).
    names = ZenossNames("t", rrdpath_map={ETH0: "/zport/dmd/Devices/Server/Linux/devices/dev1/os/interfaces/eth0"})
    assert names.fields(ETH0 + "/ifInOctets_ifInOctets.rrd")["key"] == "Devices/dev1/os/interfaces/eth0"
    assert names.fields("Devices/dev2/sysUpTime_sysUpTime.rrd")["key"] == "Devices/dev2"


def test_zenoss_key_follows_the_mapped_object_not_the_directory():
    # A device renamed or a component whose rrdPath differs: the mapped object path wins, as in Import4.
    names = ZenossNames("t", rrdpath_map={"Devices/old1/os/x": "/zport/dmd/Devices/Server/devices/new1/hw/cards/x"})
    assert names.fields("Devices/old1/os/x/a.rrd")["key"] == "Devices/new1/hw/cards/x"
    assert names.fields("Devices/old1/os/x/a.rrd")["dir"] == "Devices/old1/os/x"


@pytest.mark.parametrize("mapped, expected", [
    # nested device classes: only the devices relation counts, however deep the class
    ("/zport/dmd/Devices/Network/Router/Cisco/Core/devices/rtr1", "Devices/rtr1"),
    # a later devices segment belongs to a component path and stays (Import4 cut at the first one too)
    ("/zport/dmd/Devices/Storage/devices/san1/hw/devices/disk0", "Devices/san1/hw/devices/disk0"),
    # a class whose name ends in "devices" is not cut inside its name (Import4's ${mapped#*devices/} was)
    ("/zport/dmd/Devices/Storagedevices/devices/san1/os", "Devices/san1/os"),
    ("/zport/dmd/Devices/Server/devices/dev1/", "Devices/dev1"),  # trailing slash
    ("zport//dmd/Devices/Server/devices//dev1", "Devices/dev1"),  # empty segments
    # no devices relation, or nothing after it: the directory is kept
    ("/zport/dmd/Monitors/Performance/localhost", "Devices/dev1"),
    ("/zport/dmd/Devices/Server/devices/", "Devices/dev1"),
    ("", "Devices/dev1"),
    (None, "Devices/dev1"),
])
def test_resource_key_edge_cases(mapped, expected):
    assert resource_key("Devices/dev1", mapped) == expected


def test_zenoss_key_of_a_generated_map_line():
    # rrdpath.map as export4 writes it: "<rrdPath()>|<primary path>"; the key equals the rrdPath again.
    line = "Devices/web01/os/filesystems/boot|/zport/dmd/Devices/Server/Linux/devices/web01/os/filesystems/boot"
    directory, mapped = line.split("|")
    assert resource_key(directory, mapped) == directory


@pytest.mark.parametrize("relative", ["Devices/dev1/laLoadInt5_laLoadInt5_GAUGE.rrd",
                                      "Devices/dev1/laLoadInt5_laLoadInt5_GAUGE.rrd.xml.gz"])
def test_zenoss_gauge_suffix_is_removed(relative):
    assert ZenossNames("t").fields(relative)["name"] == "laLoadInt5_laLoadInt5"


@pytest.mark.parametrize("relative", ["Devices/x.rrd", "Other/dev1/x.rrd", "x.rrd", "Daemons/zenhub/x.rrd"])
def test_zenoss_skips_files_not_under_a_device(relative):
    assert ZenossNames("t").fields(relative) is None


def test_zenoss_series_escapes_metric_and_tags():
    names = ZenossNames("t:1", rrdpath_map={"Devices/my dev": "/zport/dmd/Devices/A B/devices/my dev"})
    metric, tags = names.series(names.fields("Devices/my dev/cpu (user)_cpu.rrd"), "ds0", False)
    assert metric == "my-dev/cpu--user-_cpu"
    assert tags == {"device": "my-dev", "key": "Devices/my-dev", "zenoss_tenant_id": "t-1"}


def test_zenoss_key_escapes_non_ascii_and_newlines():
    names = ZenossNames("t", rrdpath_map={"Devices/d\xe9v": "/zport/dmd/Devices/S/devices/d\xe9v/os/i f\n0"})
    _metric, tags = names.series(names.fields("Devices/d\xe9v/x.rrd"), "ds0", False)
    assert tags["key"] == "Devices/d-v/os/i-f-0"


@pytest.mark.parametrize("template, several, expected", [
    ("{device}/{name}", False, "dev1/ifIn"),
    ("{device}/{name}", True, "dev1/ifIn_ds-0"),
    ("{device}/{name}.{ds}", True, "dev1/ifIn.ds-0"),
    ("{path}", False, ETH0 + "/ifIn"),
])
def test_zenoss_metric_templates(template, several, expected):
    names = ZenossNames("t", metric_template=template)
    metric, _tags = names.series(names.fields(ETH0 + "/ifIn.rrd"), "ds 0", several)
    assert metric == expected


def test_zenoss_custom_tag_templates():
    names = ZenossNames("t", tag_templates={"host": "{device}", "component": "{dir}/{ds}"})
    _metric, tags = names.series(names.fields(ETH0 + "/ifIn.rrd"), "in", False)
    assert tags == {"host": "dev1", "component": ETH0 + "/in"}


@pytest.mark.parametrize("kwargs", [{"metric_template": "{device}/{unknown}"}, {"metric_template": "{0}"},
                                    {"metric_template": "{device"}, {"tag_templates": {"x": "{hostname}"}}])
def test_invalid_template_is_refused_at_construction(kwargs):
    with pytest.raises(FerryError, match="template"):
        ZenossNames("t", **kwargs)


# -- Zenoss side files -----------------------------------------------------------------------------------------
def test_read_rrdpath_map(tmp_path):
    path = write(tmp_path / "rrdpath.map", "Devices/dev1|/zport/dmd/Devices/Server/devices/dev1\n\n"
                                           "Devices/dev1/os/interfaces/eth0/ | /zport/dmd/x/eth0 \n")
    assert read_rrdpath_map(path) == {"Devices/dev1": "/zport/dmd/Devices/Server/devices/dev1",
                                      ETH0: "/zport/dmd/x/eth0"}


def test_bad_rrdpath_map_line_is_named(tmp_path):
    path = write(tmp_path / "rrdpath.map", "Devices/dev1|/zport/dmd/x\n\nno separator here\n")
    with pytest.raises(FerryError, match="line 3"):
        read_rrdpath_map(path)


def test_missing_rrdpath_map_is_empty(tmp_path):
    assert read_rrdpath_map(str(tmp_path / "missing.map")) == {}
    assert read_rrdpath_map(None) == {}


def test_read_tenant(tmp_path):
    assert read_tenant(write(tmp_path / "dmd_uuid.txt", "0f2c-11aa\n")) == "0f2c-11aa"
    with pytest.raises(FerryError, match="empty"):
        read_tenant(write(tmp_path / "empty.txt", "\n"))
    with pytest.raises(FerryError, match="missing.txt"):
        read_tenant(str(tmp_path / "missing.txt"))


def test_find_upwards(tmp_path):
    deep = tmp_path / "a" / "b" / "c" / "d" / "e"
    deep.mkdir(parents=True)
    top = write(tmp_path / "a" / "dmd_uuid.txt", "x")
    assert find_upwards(str(deep.parent), "dmd_uuid.txt") == top  # d, c, b, a: three levels up
    assert find_upwards(str(deep), "dmd_uuid.txt") is None  # a is four levels above e
    assert find_upwards(str(deep), "dmd_uuid.txt", levels=4) == top
    nearer = write(tmp_path / "a" / "b" / "c" / "dmd_uuid.txt", "y")
    assert find_upwards(str(deep), "dmd_uuid.txt") == nearer
    (deep / "dmd_uuid.txt").mkdir()  # a directory of that name is not the file
    assert find_upwards(str(deep), "dmd_uuid.txt") == nearer


# -- shards ----------------------------------------------------------------------------------------------------
PATHS = ["Devices/dev%d/os/interfaces/eth%d/ifInOctets_ifInOctets.rrd" % (n // 7, n % 7) for n in range(1000)]


def shards_of(paths, count):
    return [[index for index in range(count) if in_shard(path, index, count)] for path in paths]


def test_every_path_is_in_exactly_one_shard():
    for count in (2, 3, 7):
        assert all(len(shards) == 1 for shards in shards_of(PATHS, count))
    sizes = [sum(1 for shards in shards_of(PATHS, 3) if shards == [index]) for index in range(3)]
    assert min(sizes) > 280 and max(sizes) < 390, sizes


def test_one_shard_holds_everything():
    assert all(in_shard(path, 0, 1) and in_shard(path, 0, 0) for path in PATHS[:50])


def test_shards_are_the_same_in_another_process():
    # hosts splitting one tree must agree: the split may not depend on the interpreter's hash seed
    code = ("import json, sys\n"
            "from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import in_shard\n"
            "paths = json.load(sys.stdin)\n"
            "print(json.dumps([[i for i in range(3) if in_shard(p, i, 3)] for p in paths]))\n")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    other = subprocess.run([sys.executable, "-c", code], input=json.dumps(PATHS[:200]), env=env,
                           capture_output=True, text=True, check=True)
    assert json.loads(other.stdout) == shards_of(PATHS[:200], 3)


def test_a_file_name_that_is_not_utf8_has_a_shard_of_its_bytes():
    """Before, its name crashed the walk (UnicodeEncodeError) as soon as shard_count was above 1."""
    name = os.fsdecode(b"Devices/dev\xfe/caf\xe9.rrd")
    shards = [index for index in range(3) if in_shard(name, index, 3)]
    assert shards == [zlib.crc32(b"Devices/dev\xfe/caf\xe9.rrd") % 3]


@pytest.mark.parametrize("text, shown", [
    (os.fsdecode(b"dir\xfe/caf\xe9.rrd"), "dir\\xfe/caf\\xe9.rrd"),
    ("new\nline\t.rrd", "new\\x0aline\\x09.rrd"),
    ("caf\u00e9 ok", "caf\u00e9 ok"),
])
def test_readable_names_are_valid_utf8_text(text, shown):
    assert readable(text) == shown
    readable(text).encode("utf-8")


@pytest.mark.parametrize("prefix", ["x/../../../P", "nav..rrd", "nav\nrrd"])
def test_a_metric_prefix_that_is_no_carbon_path_is_refused(prefix):
    with pytest.raises(FerryError, match="invalid metric_prefix"):
        NavNames(prefix=prefix)


# -- file lists and the completion log -------------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "rrd"
    for relative in ("a/x.rrd", "a/y.rrd", "b/z.rrd.xml"):
        write(root / relative, "")
    return root


def test_relative_files(tree):
    files = ["b/z.rrd.xml", str(tree / "a" / "x.rrd"), "./a/../a/x.rrd", "a/y.rrd"]
    assert relative_files(str(tree), files) == ["a/x.rrd", "a/y.rrd", "b/z.rrd.xml"]


@pytest.mark.parametrize("name, message", [
    ("../outside.rrd", "not inside"),
    ("/etc/hostname", "not inside"),
    ("../rrd2/a/x.rrd", "not inside"),
    ("a/missing.rrd", "does not exist"),
    ("a", "does not exist"),
])
def test_relative_files_refuses(tree, name, message):
    write(tree.parent / "outside.rrd", "")
    write(tree.parent / "rrd2" / "a" / "x.rrd", "")
    with pytest.raises(FerryError, match=message):
        relative_files(str(tree), [name])


def done_log(path, resume, *added):
    log = DoneLog(str(path), resume)
    for relative in added:
        log.add(relative)
    log.close()
    return set(log.done)


def read_done(path):
    return set(DoneLog.read(str(path)))


def test_done_log_resume_keeps_entries(tmp_path):
    path = tmp_path / "state.done"
    assert done_log(path, False, "a.rrd", "b/c.rrd") == {"a.rrd", "b/c.rrd"}
    assert done_log(path, True) == {"a.rrd", "b/c.rrd"}
    assert done_log(path, True, "d.rrd") == {"a.rrd", "b/c.rrd", "d.rrd"}
    assert read_done(path) == {"a.rrd", "b/c.rrd", "d.rrd"}


def test_done_log_without_resume_starts_over(tmp_path):
    path = tmp_path / "state.done"
    done_log(path, False, "a.rrd")
    assert done_log(path, False, "b.rrd") == {"b.rrd"}
    assert read_done(path) == {"b.rrd"}


def test_done_log_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / "state.done"
    path.write_bytes(b'"a.rrd"\n"b/c.r')
    assert read_done(path) == {"a.rrd"}
    assert done_log(path, True) == {"a.rrd"}


def test_done_log_resumes_again_after_a_torn_line(tmp_path):
    path = tmp_path / "state.done"
    path.write_bytes(b'"a.rrd"\n"b/c.r')
    assert done_log(path, True, "d.rrd") == {"a.rrd", "d.rrd"}
    assert read_done(path) == {"a.rrd", "d.rrd"}
    assert done_log(path, True) == {"a.rrd", "d.rrd"}


def test_done_log_read_of_a_missing_file(tmp_path):
    assert read_done(tmp_path / "none.done") == set()


def test_done_log_keeps_stamps_and_pending_files_notice_changes(tmp_path):
    """A file converted, then changed (size or mtime) or added, is pending again; the others are not."""
    src = tmp_path / "rrd"
    src.mkdir()
    for name in ("a.rrd", "b.rrd"):
        (src / name).write_bytes(b"x" * 10)
    log = DoneLog(str(tmp_path / "s.done"), False)
    for name in ("a.rrd", "b.rrd"):
        log.add(name, file_stamp(str(src / name)))
    log.close()
    done = DoneLog.read(str(tmp_path / "s.done"))
    assert list(pending_files(str(src), 0, 1, done)) == []
    (src / "b.rrd").write_bytes(b"y" * 11)
    (src / "c.rrd").write_bytes(b"z")
    assert list(pending_files(str(src), 0, 1, done)) == ["b.rrd", "c.rrd"]
    assert list(pending_files(str(src), 0, 1, {"b.rrd": None, "c.rrd": None, "a.rrd": None})) == []


# -- whisper layout planning -----------------------------------------------------------------------------------
def rrd_archives(*spec):
    """Fake RRD archives (step, rows), finest first, like RrdFile.archives_of gives them."""
    return [SimpleNamespace(index=index, step=step, rows=rows, start=T0 - step * rows)
            for index, (step, rows) in enumerate(spec)]


def planned(spec, finer=None):
    """(targets, warnings) of plan_layout, checked to be a layout whisper accepts."""
    archives = rrd_archives(*spec)
    targets, warnings = plan_layout(archives, finer)
    pairs = [target.as_tuple() for target in targets]
    assert pairs == sorted(pairs)
    whisper.validateArchiveList(list(pairs))  # raises whisper.InvalidConfiguration
    for archive in archives:  # every RRD archive is stored, over at least its span
        holders = [t for t in targets if archive in t.sources and t.how != "expand"]
        assert len(holders) == 1, (archive, pairs)
        assert holders[0].spp * holders[0].points >= archive.step * archive.rows
    return targets, warnings


def test_dividing_archives_are_mirrored():
    spec = [(300, 600), (1800, 700), (7200, 775), (86400, 797)]
    targets, warnings = planned(spec)
    assert [t.as_tuple() for t in targets] == spec
    assert [t.how for t in targets] == ["mirror"] * 4
    assert [[a.index for a in t.sources] for t in targets] == [[0], [1], [2], [3]]
    assert warnings == []


def test_non_dividing_steps_are_adjusted_with_warnings():
    targets, warnings = planned([(300, 600), (900, 700), (1200, 775), (2100, 796), (3000, 797)])
    assert [t.spp for t in targets][:2] == [300, 900]
    assert all(later.spp % earlier.spp == 0 for earlier, later in zip(targets, targets[1:]))
    for step in (1200, 2100, 3000):
        assert any(str(step) in warning for warning in warnings), (step, warnings)


def test_finer_schema_archives_are_expanded_in_front():
    targets, warnings = planned([(300, 288), (1800, 700)], finer=[(60, 1440), (10, 360)])
    assert [t.as_tuple() for t in targets[:2]] == [(10, 360), (60, 1440)]
    assert [t.how for t in targets] == ["expand", "expand", "mirror", "mirror"]
    assert [[a.index for a in t.sources] for t in targets[:2]] == [[0], [0]]
    assert [t.spp for t in targets[2:]] == [300, 1800]
    assert warnings == []


def test_schema_archives_not_finer_than_the_rrd_are_ignored():
    targets, _warnings = planned([(300, 288)], finer=[(60, 1440), (300, 8640), (3600, 8760)])
    assert [t.spp for t in targets] == [60, 300]


def test_non_dividing_finer_schema_archive_is_adjusted_to_a_divisor():
    targets, warnings = planned([(300, 288)], finer=[(120, 720)])
    finest = targets[0]
    assert finest.how == "expand" and 300 % finest.spp == 0 and finest.spp <= 120
    assert finest.spp * finest.points >= 120 * 720
    assert len(warnings) == 1 and "120" in warnings[0]


def test_finer_archive_covering_more_extends_the_coarser():
    targets, _warnings = planned([(300, 288)], finer=[(60, 43200)])  # 30 days of minutes over a 1-day RRD
    assert targets[0].as_tuple() == (60, 43200)
    assert targets[1].spp == 300 and targets[1].spp * targets[1].points > 60 * 43200


def test_equal_span_is_extended_too():
    # 1 day at 60 s over 1 day at 300 s: whisper wants the coarser archive to cover strictly more
    targets, _warnings = planned([(300, 288)], finer=[(60, 1440)])
    assert targets[1].points > 288


def test_coarser_archive_of_one_row():
    # an RRA of one row (one day's MAX, say) above a finer one covering less than a day
    planned([(300, 12), (86400, 1)])
    planned([(60, 1), (120, 1)])


def test_random_rrd_layouts_are_accepted_by_whisper():
    rng = random.Random(20250101)
    for _round in range(200):
        base = rng.choice([1, 10, 60, 300])
        pdps = sorted(set(rng.randint(1, 600) for _i in range(rng.randint(1, 12))))
        spec = [(base * pdp, rng.randint(1, 2000)) for pdp in pdps]
        finer = rng.choice([None, [], [(rng.randint(1, 300), rng.randint(1, 5000))], [(10, 360), (60, 1440)]])
        planned(spec, finer)


@pytest.mark.parametrize("total, most, workers, size", [
    (388, 64, 2, 49),  # 8 batches of at most 49, not 6 of 64 and one of 4: both workers busy to the end
    (400, 16, 2, 16),
    (10, 64, 2, 5),
    (100, 64, 1, 50),
    (1, 64, 4, 1),
    (0, 64, 2, 64),
])
def test_groups_are_equal_and_shared_evenly_by_the_workers(total, most, workers, size):
    assert balanced_group_size(total, most, workers) == size


def test_group_size_never_exceeds_the_limit():
    for total in range(1, 300):
        for most in (1, 5, 16, 64):
            for workers in (1, 2, 3, 8):
                assert 1 <= balanced_group_size(total, most, workers) <= most
