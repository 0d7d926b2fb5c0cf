# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Metric names of RRD files: NAV's for whisper (:class:`NavNames`, mapping files) and Zenoss 5's for OpenTSDB
(:class:`ZenossNames`, ``rrdpath.map``, the tenant id)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import math
import os
import re

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.rrdfile import strip_suffix
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.whisper import metric_problem

_NAV_UNSAFE = re.compile(r"[./ (),]")
_ZENOSS_UNSAFE = re.compile(r"[^0-9a-zA-Z\-_./]")


def nav_escape(part):
    """NAV's escaping of one metric path element."""
    return _NAV_UNSAFE.sub("_", part)


def zenoss_escape(text):
    """Zenoss's: characters outside [0-9a-zA-Z-_./] become '-'."""
    return _ZENOSS_UNSAFE.sub("-", text)


class Mapping(dict):
    """{(relative rrd path, ds or ''): metric}, and in ``scales`` the factors some entries give."""

    def __init__(self):
        dict.__init__(self)
        self.scales = {}


def load_mapping(path, root):
    """A mapping file as a :class:`Mapping`.

    CSV rows ``rrd_path,metric``, ``rrd_path,ds,metric`` or ``rrd_path,ds,metric,scale`` (a header row
    naming ``metric`` is skipped); YAML ``{rrd_path: metric}``, ``{rrd_path: {ds: metric}}`` or
    ``{rrd_path: {ds: {metric: m, scale: f}}}``. Absolute paths under ``root`` are made relative to it: ``root``
    is the RRD directory as the paths in the file name it (NAV stores them absolute, on the NAV 3 host), which
    need not be the tree converted (a copy of it on another host, or its dumps). A path naming a dump
    (``x.rrd.xml.gz``) names its RRD.
    A metric given for a file without a DS is the file's prefix: its data sources are appended. A scale
    multiplies the values (NAV 4 stores sensors scaled by their precision, NAV 3 did not).
    """
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FerryError("cannot read mapping file %s: %s" % (path, getattr(exc, "strerror", None) or exc))
    entries = _yaml_mapping(path, text) if path.endswith((".yml", ".yaml")) else _csv_mapping(path, text)
    mapping = Mapping()
    root = os.path.abspath(root)
    for rrd_path, ds, metric, scale in entries:
        if os.path.isabs(rrd_path):
            rrd_path = os.path.relpath(rrd_path, root)
        key = (_mapping_key(rrd_path), ds or "")
        if key in mapping and mapping[key] != metric:
            raise FerryError("mapping file %s maps %s%s twice (%s, %s)"
                             % (path, rrd_path, " ds " + ds if ds else "", mapping[key], metric))
        mapping[key] = metric
        if scale not in (None, ""):
            mapping.scales[key] = _scale(path, rrd_path, scale)
    return mapping


def _scale(path, rrd_path, text):
    try:
        factor = float(text)
    except (TypeError, ValueError):
        factor = float("nan")
    if math.isnan(factor) or math.isinf(factor) or factor == 0.0:
        raise FerryError("mapping file %s: %s has an invalid scale %r" % (path, rrd_path, text))
    return factor


_CSV_FORMS = "rrd_path,metric or rrd_path,ds,metric[,scale]"
_RRD_SUFFIXES = (".rrd", ".rrd.xml", ".rrd.xml.gz")


def _csv_mapping(path, text):
    """Rows of a CSV mapping file: quoted fields as the csv module (and PostgreSQL's ``COPY ... CSV``) write
    them, so a path may hold commas (NAV's ``sensors (chassis 1, slot 0)``) or quotes; unquoted files keep
    working, also ``psql -At -F,`` output whose paths hold commas (see :func:`_rejoin_path`). A bad row
    raises naming the line it starts on and the forms expected."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header_seen = False
    number = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FerryError("mapping file %s line %d: %s; expected %s (quote a field holding a comma or a "
                             "quote, doubling the quotes inside)" % (path, number, exc, _CSV_FORMS))
        first_line, number = number, reader.line_num + 1
        row = [cell.strip() for cell in _rejoin_path(row)]
        if not row or not any(row) or row[0].startswith("#"):
            continue
        first_row, header_seen = not header_seen, True
        if first_row and "metric" in [cell.lower() for cell in row]:
            continue
        if len(row) == 2:
            row = [row[0], "", row[1]]
        if len(row) == 3:
            row.append("")
        if len(row) != 4 or not row[0] or not row[2]:
            raise FerryError("mapping file %s line %d: expected %s, got %d field(s)%s"
                             % (path, first_line, _CSV_FORMS, len(row),
                                " (a path holding a comma must be quoted: \"a, b/c.rrd\")" if len(row) > 4 else ""))
        yield tuple(row)


def _rejoin_path(row):
    """An unquoted path holding commas split into several fields, joined again: the path is the first fields
    up to the one ending in ``.rrd`` (or ``.rrd.xml[.gz]``), since NAV's data source names, metrics and
    scales hold no comma. A row whose first field names an RRD, or with no field naming one, is left as it is."""
    if not row or row[0].strip().endswith(_RRD_SUFFIXES):
        return row
    for index, cell in enumerate(row[1:], 1):
        if cell.strip().endswith(_RRD_SUFFIXES):
            return [",".join(row[:index + 1])] + row[index + 1:]
    return row


def _yaml_mapping(path, text):
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise FerryError("reading the YAML mapping file %s needs PyYAML" % path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise FerryError("mapping file %s is not valid YAML (%s)" % (path, exc))
    if not isinstance(data, dict):
        raise FerryError("mapping file %s: expected a mapping of RRD paths to metrics" % path)
    for rrd_path, value in data.items():
        if isinstance(value, dict):
            for ds, metric in value.items():
                if isinstance(metric, dict) and "metric" in metric:
                    yield str(rrd_path), str(ds), str(metric["metric"]), metric.get("scale")
                else:
                    yield str(rrd_path), str(ds), str(metric), None
        elif isinstance(value, str):
            yield str(rrd_path), "", value, None
        else:
            raise FerryError("mapping file %s: %s maps to %r, expected a metric or {ds: metric}" % (path, rrd_path, value))


class NavNames:
    """Metric names for whisper: a mapping file's, else ``<prefix>.<dir>...<rrd name>.<ds>`` escaped like NAV."""

    def __init__(self, prefix="", mapping=None, unmapped="default"):
        self.prefix = prefix.strip(".")
        problem = metric_problem(self.prefix) if self.prefix else None
        if problem:
            raise FerryError("invalid metric_prefix %s: %s" % (ascii(prefix), problem))
        self.mapping = mapping
        self.unmapped = unmapped

    def metric(self, relative, ds):
        """The metric of one data source, or None to skip it."""
        if self.mapping is not None:
            key = _mapping_key(relative)
            if (key, ds) in self.mapping:
                return self.mapping[(key, ds)]
            if (key, "") in self.mapping:
                return self.mapping[(key, "")] + "." + nav_escape(ds)
            if self.unmapped == "skip":
                return None
        parts = relative.split(os.sep)
        parts[-1] = strip_suffix(parts[-1])
        names = [nav_escape(part) for part in parts] + [nav_escape(ds)]
        return ".".join(([self.prefix] if self.prefix else []) + names)

    def scale(self, relative, ds):
        """The factor the mapping file gives a data source's values (1.0 without one)."""
        scales = getattr(self.mapping, "scales", None)
        if not scales:
            return 1.0
        key = _mapping_key(relative)
        return scales.get((key, ds), scales.get((key, ""), 1.0))


def _mapping_key(relative):
    """A file's key in a mapping: ``x.rrd`` also for its dump ``x.rrd.xml[.gz]`` (the mapping names the RRD)."""
    key = os.path.normpath(relative)
    for suffix in (".xml.gz", ".xml"):
        if key.endswith(".rrd" + suffix):
            return key[:-len(suffix)]
    return key


class ZenossNames:
    """Zenoss 5 naming of a perf file under ``Devices/``: metric ``<device>/<name>``, tags device / key / tenant.

    ``key`` is :func:`resource_key` of the file's directory: ``Devices/<device>/<component path>``.
    """

    def __init__(self, tenant, rrdpath_map=None, metric_template="{device}/{name}", tag_templates=None):
        self.tenant = tenant
        self.rrdpath_map = rrdpath_map or {}
        self.metric_template = metric_template
        self.tag_templates = tag_templates or {"device": "{device}", "key": "{key}", "zenoss_tenant_id": "{tenant}"}
        sample = dict.fromkeys(("device", "name", "dir", "path", "key", "tenant", "ds"), "x")
        for template in [metric_template] + list(self.tag_templates.values()):
            try:
                str(template).format(**sample)
            except (KeyError, IndexError, ValueError) as exc:
                raise FerryError("invalid naming template %r (%s): use the fields %s"
                                 % (template, exc, ", ".join("{%s}" % f for f in sorted(sample))))

    def fields(self, relative):
        """Template fields of a file, or None when Zenoss would skip it."""
        parts = relative.split(os.sep)
        if len(parts) < 3 or parts[0] != "Devices":
            return None
        name = strip_suffix(parts[-1])
        if name.endswith("_GAUGE"):
            name = name[:-len("_GAUGE")]
        directory = "/".join(parts[:-1])
        return {"device": parts[1], "name": name, "dir": directory, "path": "/".join(parts[:-1] + [name]),
                "key": resource_key(directory, self.rrdpath_map.get(directory)), "tenant": self.tenant}

    def series(self, fields, ds, several):
        values = dict(fields, ds=ds)
        metric = self.metric_template.format(**values)
        if several and "{ds}" not in self.metric_template:
            metric += "_" + ds
        tags = dict((key, zenoss_escape(template.format(**values))) for key, template in self.tag_templates.items())
        return zenoss_escape(metric), tags


def resource_key(directory, mapped=None):
    """The ``key`` tag Zenoss 5 queries for a perf directory ``Devices/<dir>``: ``Devices/`` and the object's path
    below its device class's ``devices`` relation (prodbin 5.x ``MetricMixin.getResourceKey``), taken from the
    ``rrdpath.map`` object path ``mapped`` when there is one, else the directory itself (Zenoss 4's ``rrdPath()``
    is that same form).

    Import4 cut the mapped path after the first ``devices/`` substring (``${mapped#*devices/}``); the first path
    segment that *is* ``devices`` is the relation (Zope refuses a device class of that id), so a class such as
    ``Storagedevices`` is not cut inside its name. Later ``devices`` segments belong to components and stay.
    A mapped path without a ``devices`` segment, or ending there, says nothing of the device: the directory is kept
    (Import4 would have written ``Devices/`` + the whole object path).
    """
    if mapped:
        parts = [part for part in mapped.split("/") if part]
        if "devices" in parts:
            below = parts[parts.index("devices") + 1:]
            if below:
                return "Devices/" + "/".join(below)
    return directory


def find_upwards(directory, name, levels=3):
    """``name`` in ``directory`` or up to ``levels`` directories above it, or None."""
    current = os.path.abspath(directory)
    for _level in range(levels + 1):
        candidate = os.path.join(current, name)
        if os.path.isfile(candidate):
            return candidate
        current = os.path.dirname(current)
    return None


def read_rrdpath_map(path):
    """``Devices/<dir>|<object path>`` lines as a dict; a missing file is an empty map."""
    mapping = {}
    if not path or not os.path.exists(path):
        return mapping
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            if "|" not in line:
                raise FerryError("%s line %d: expected Devices/<dir>|<object path>" % (path, number))
            directory, target = line.split("|", 1)
            mapping[directory.strip().rstrip("/")] = target.strip()
    return mapping


def read_tenant(path):
    """The dmd UUID of dmd_uuid.txt, without its newline (Zenoss's importer kept it)."""
    try:
        with open(path, "rb") as handle:
            tenant = handle.read(4096).decode("utf-8", "replace").strip()
    except OSError as exc:
        raise FerryError("cannot read the tenant id from %s: %s" % (path, exc.strerror))
    if not tenant:
        raise FerryError("%s is empty: it should hold the Zenoss instance UUID" % path)
    return tenant
