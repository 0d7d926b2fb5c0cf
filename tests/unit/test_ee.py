# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment definition (issue 12, defect 10): ansible-builder 3 accepts it, its paths are right
for both of its readers, and its Python requirements are exactly the third-party packages the plugins import.

``scripts/test.sh ee`` goes further: the collection tarball in the build context, the galaxy stage run offline
and ansible-builder's introspection of the installed collection."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import pytest
import yaml

from tests.support import ee_imports

ROOT = ee_imports.ROOT
META = os.path.join(ROOT, "meta")
DEFINITION = os.path.join(META, "execution-environment.yml")


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def definition():
    return load(DEFINITION)


def test_the_requirements_are_exactly_what_the_plugins_import():
    listed = ee_imports.requirement_names(os.path.join(META, "ee-requirements.txt"))
    assert ee_imports.compare(listed, ee_imports.plugin_requirements()) == []


def test_each_requirement_says_whether_it_is_optional_and_names_the_modules_importing_it():
    wanted = ee_imports.plugin_requirements()
    listed = ee_imports.requirement_names(os.path.join(META, "ee-requirements.txt"))
    for name, line in listed.items():
        comment = line.partition("#")[2].strip()
        assert comment.startswith(("required;", "optional;")), line
        assert ee_imports.documented_modules(line) == wanted[name], line
    # the rrdtool binding is what the RRD converters need to read .rrd files; the accelerators are optional
    assert listed["rrdtool"].partition("#")[2].strip().startswith("required;")
    assert all(listed[name].partition("#")[2].strip().startswith("optional;") for name in ("orjson", "isal"))


def test_the_copies_ansible_builder_reads_from_the_repository_are_identical():
    for name in ("ee-requirements.txt", "ee-bindep.txt"):
        with open(os.path.join(META, name), "rb") as original, open(os.path.join(META, "meta", name), "rb") as copy:
            assert copy.read() == original.read(), "meta/meta/%s must be a copy of meta/%s" % (name, name)


def test_the_definition_is_version_3_and_valid_for_ansible_builder(definition):
    from ansible_builder.ee_schema import validate_schema  # pylint: disable=import-outside-toplevel

    assert definition["version"] == 3
    validate_schema(dict(definition))
    assert definition["images"]["base_image"]["name"]
    assert definition["dependencies"]["ansible_core"]["package_pip"].startswith("ansible-core")
    assert definition["dependencies"]["ansible_runner"]["package_pip"].startswith("ansible-runner")


def test_the_dependency_paths_are_right_for_ansible_builder_and_for_its_introspection(definition):
    """ansible-builder takes them relative to meta/; its introspection of the installed collection relative to the
    collection root (a missing file there stops the image build)."""
    for key, original in (("python", "ee-requirements.txt"), ("system", "ee-bindep.txt")):
        path = definition["dependencies"][key]
        assert isinstance(path, str) and not os.path.isabs(path)
        for base in (ROOT, META):
            assert os.path.isfile(os.path.join(base, path)), (key, base, path)
        assert os.path.realpath(os.path.join(ROOT, path)) == os.path.join(os.path.realpath(META), original)


def test_the_collection_comes_from_its_own_tarball_never_from_galaxy(definition):
    version = load(os.path.join(ROOT, "galaxy.yml"))["version"]
    tarball = "ferry-migrate-%s.tar.gz" % version
    assert definition["dependencies"]["galaxy"] == {
        "collections": [{"name": "collections/%s" % tarball, "type": "file"}]}
    assert definition["additional_build_files"] == [{"src": "../%s" % tarball, "dest": "collections"}]


def test_ansible_builder_create_makes_a_context_listing_exactly_the_plugins_imports(tmp_path):
    context = tmp_path / "context"
    proc = subprocess.run([sys.executable, "-m", "ansible_builder", "create", "-f", DEFINITION,
                           "--context", str(context)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout
    assert ee_imports.check_context(str(context)) == []


def test_the_import_scan_finds_imports_anywhere_and_leaves_out_the_standard_library(tmp_path):
    utils = tmp_path / "plugins" / "module_utils" / "sub"
    utils.mkdir(parents=True)
    (utils / "__init__.py").write_text("")
    (utils / "deep.py").write_text("import json\ndef f():\n    try:\n        import yaml\n    except ImportError:\n"
                                   "        pass\n")
    (tmp_path / "plugins" / "module_utils" / "fast.py").write_text(
        "from ansible_collections.ferry.migrate.plugins.module_utils.sub import deep\nfrom isal import isal_zlib\n")
    modules = tmp_path / "plugins" / "modules"
    modules.mkdir()
    (modules / "one.py").write_text(
        "from ansible.module_utils.basic import AnsibleModule\n"
        "from ansible_collections.ferry.migrate.plugins.module_utils import fast\nimport os, zlib\n")
    (modules / "two.py").write_text("import rrdtool\n")
    (modules / "three.py").write_text("import collections.abc\n")
    assert ee_imports.third_party_by_module(str(tmp_path)) == {
        "one": {"isal", "yaml"}, "two": {"rrdtool"}, "three": set()}
    assert ee_imports.plugin_requirements(str(tmp_path)) == {
        "isal": ["one"], "PyYAML": ["one"], "rrdtool": ["two"]}
    (modules / "four.py").write_text("import requests\n")
    with pytest.raises(KeyError, match="requests"):
        ee_imports.plugin_requirements(str(tmp_path))
    assert ee_imports.compare(["PyYAML", "requests"], {"pyyaml": [], "isal": []}) == [
        "imported by the plugins but not listed: isal", "listed but imported by no plugin: requests"]
