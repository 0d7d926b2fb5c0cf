# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scan_to_role: a scan report (and its objects) as a readable role that lints clean and renders verbatim."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import yaml

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.scan import role
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import ReportWriter, name_fields
from ansible_collections.ferry.migrate.plugins.module_utils.scan.role_yaml import Unsafe, dump
from tests.support.steps import pytest_step_only

VENV = os.path.dirname(sys.executable)
JINJA = b"# managed\nvalue = {{ x }}\n{% if y %}on{% endif %}\n{# note #}\n{%- endraw %} {%endraw-%}\n"
SETUID = b"\x7fELF\0\0binary"
NEWLINE_NAME = b"etc/odd\nname.conf"
LATIN1_NAME = b"etc/caf\xe9.conf"

HEADER = {
    "created": "2026-12-06T10:00:00Z", "root": "/",
    "system": {"distribution": "debian", "version": "12", "codename": "bookworm", "family": "debian",
               "arch": "amd64", "kernel": "6.1.0-18-amd64", "hostname": "web01"},
    "install_profile": {
        "filesystems": [{"device": "UUID=1234", "mountpoint": "/", "type": "ext4", "options": "defaults"}],
        "swap": [], "timezone": "Europe/Paris", "locale": {"LANG": "C.UTF-8"}, "keyboard": {"XKBLAYOUT": "fr"},
        "kernel_cmdline": None,
        "users": [{"name": "root", "uid": 0, "gid": 0, "gecos": "root", "home": "/root", "shell": "/bin/bash"},
                  {"name": "alice", "uid": 1001, "gid": 1001, "gecos": "Alice,,,", "home": "/home/alice",
                   "shell": "/bin/bash"},
                  {"name": "svc", "uid": 998, "gid": 998, "gecos": "", "home": "/nonexistent",
                   "shell": "/usr/sbin/nologin"},
                  {"name": "nobody", "uid": 65534, "gid": 65534, "gecos": "nobody", "home": "/nonexistent",
                   "shell": "/usr/sbin/nologin"}],
        "groups": [{"name": "root", "gid": 0, "members": []}, {"name": "alice", "gid": 1001, "members": []},
                   {"name": "svc", "gid": 998, "members": []}, {"name": "sudo", "gid": 27, "members": ["alice"]},
                   {"name": "web", "gid": 1500, "members": ["alice", "svc"]}],
        "network": [{"name": "eth0", "method": "static", "address": "192.0.2.10/24",
                     "source": "etc/network/interfaces"}],
        "selinux": None},
    "options": {"roots": ["/"], "excludes": []},
}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def file_record(path, data, mode=0o644, owner="root", group="root", uid=0, gid=0, change="added", **extra):
    record = dict(name_fields("path", path), type="file", mode=mode, uid=uid, gid=gid, owner=owner, group=group,
                  size=len(data), mtime_ns=0, sha256=sha(data), package=None, change=change)
    record.update(extra)
    return record


def dir_record(path, mode=0o755, owner="root", group="root"):
    return dict(name_fields("path", path), type="dir", mode=mode, uid=0, gid=0, owner=owner, group=group, size=4096,
                mtime_ns=0, package=None, change="added")


def link_record(path, target):
    record = dict(name_fields("path", path), type="symlink", mode=0o777, uid=0, gid=0, owner="root", group="root",
                  size=len(target), mtime_ns=0, package=None, change="added")
    record.update(name_fields("target", target))
    return record


CONTENTS = {
    b"etc/app/app.conf": JINJA,
    b"etc/app/crlf.conf": b"a = 1\r\nb = 2\r\n",
    b"etc/app/key.pem": b"secret\n",
    b"etc/network/interfaces": b"auto eth0\niface eth0 inet static\n  address 192.0.2.10/24\n",
    b"etc/systemd/system/app.service": b"[Service]\nExecStart=/usr/local/bin/app\n",
    b"usr/local/bin/app": SETUID,
    b"opt/app/big.bin": b"x" * 5000,
    b"opt/app/data.bin": b"\0\1\2\3",
    b"opt/app/{{ weird }}.txt": b"braces in the name\n",
    NEWLINE_NAME: b"newline\n",
    LATIN1_NAME: b"latin1\n",
    b"home/alice/notes.txt": b"not included\n",
    b"etc/passwd": b"root:x:0:0:root:/root:/bin/bash\n",
}


def records():
    yield dict({"kind": "package"}, manager="dpkg", name="nginx", version="1.22.1-9", epoch=None, upstream="1.22.1",
               release="9", arch="amd64", origin="debian", status="installed")
    yield dict({"kind": "package"}, manager="dpkg", name="base-files", version="12.4+deb12u5", epoch=None,
               upstream="12.4+deb12u5", release=None, arch="amd64", origin="debian", status="installed")
    yield dir_record(b"etc/app", mode=0o750, group="web")
    yield file_record(b"etc/app/app.conf", JINJA, owner=None, group=None, uid=4242, gid=4343)
    yield file_record(b"etc/app/crlf.conf", CONTENTS[b"etc/app/crlf.conf"])
    yield file_record(b"etc/app/key.pem", b"secret\n", mode=0o600)
    yield file_record(b"etc/app/key-link.pem", b"secret\n", mode=0o600, link_group=1)
    yield file_record(b"etc/app/key-link2.pem", b"secret\n", mode=0o600, link_group=1)
    yield file_record(b"etc/app/empty.conf", b"")
    yield file_record(b"etc/network/interfaces", CONTENTS[b"etc/network/interfaces"], package="ifupdown",
                      change="modified", conffile=True)
    yield file_record(b"etc/systemd/system/app.service", CONTENTS[b"etc/systemd/system/app.service"])
    yield link_record(b"etc/systemd/system/multi-user.target.wants/app.service", b"/etc/systemd/system/app.service")
    yield link_record(b"etc/localtime", b"/usr/share/zoneinfo/Europe/Paris")
    yield link_record(b"etc/app/dangling", b"../nowhere")
    yield dict(name_fields("path", b"etc/nginx/sites-enabled/default"), kind="file", package="nginx",
               change="deleted", conffile=False)
    yield file_record(b"usr/local/bin/app", SETUID, mode=0o4755)
    yield file_record(b"opt/app/big.bin", b"x" * 5000)
    yield file_record(b"opt/app/data.bin", b"\0\1\2\3", owner="svc", group="svc", uid=998, gid=998)
    yield file_record(b"opt/app/{{ weird }}.txt", b"braces in the name\n")
    yield file_record(b"opt/app/notinarchive", b"lost")
    yield file_record(NEWLINE_NAME, b"newline\n")
    yield file_record(LATIN1_NAME, b"latin1\n")
    yield file_record(b"home/alice/notes.txt", b"not included\n")
    yield file_record(b"etc/passwd", CONTENTS[b"etc/passwd"])


def write_report(path, items=None, header=None):
    with ReportWriter(str(path)) as writer:
        writer.header(dict(header or HEADER))
        count = 0
        for record in items if items is not None else records():
            record = dict(record)
            kind = record.pop("kind", "file")
            getattr(writer, kind)(record)
            count += 1
        writer.close({"packages": 2, "files": count, "dirs": 1, "symlinks": 3, "modified": 1, "deleted": 1,
                      "bytes": 123, "hashed": 0, "cached": 0,
                      "skipped": {"fifo": 1, "socket": 0, "char": 1, "block": 0, "unreadable": 0}})
    return path


def write_overlay(path, report, contents=None):
    """The local overlay archive: report.jsonl.gz, then objects/<sha256> (the lost one left out)."""
    with tarfile.open(str(path), "w", format=tarfile.PAX_FORMAT) as tar:
        data = report.read_bytes()
        info = tarfile.TarInfo("report.jsonl.gz")
        info.size, info.mode = len(data), 0o600
        tar.addfile(info, io.BytesIO(data))
        seen = set()
        for content in (contents or CONTENTS).values():
            if sha(content) in seen or not content:
                continue
            seen.add(sha(content))
            info = tarfile.TarInfo("objects/" + sha(content))
            info.size, info.mode = len(content), 0o600
            tar.addfile(info, io.BytesIO(content))
    return path


def params(tmp_path, **extra):
    base = dict(report=str(tmp_path / "report.jsonl.gz"), src=str(tmp_path / "overlay.tar"), url=None,
                instance=None, scan=None, dest=str(tmp_path / "roles" / "web01"), role_name=None,
                include=list(role.DEFAULT_INCLUDE), max_file_size=4096, templates=True, state_dir=str(tmp_path / "s"),
                step=None, force=False, url_username=None, url_password=None, bearer_token=None,
                validate_certs=True, ca_path=None, timeout=120.0, retries=5)
    base.update(extra)
    return base


@pytest.fixture
def scanned(tmp_path):
    report = write_report(tmp_path / "report.jsonl.gz")
    write_overlay(tmp_path / "overlay.tar", report)
    return tmp_path


def load(dest, relative):
    return yaml.load((dest / relative).read_text(), Loader=_UnsafeLoader)


def tree(path):
    found = {}
    for top, _dirs, files in os.walk(str(path)):
        for name in files:
            full = os.path.join(top, name)
            with open(full, "rb") as handle:
                found[os.path.relpath(full, str(path))] = (handle.read(), os.stat(full).st_mtime_ns)
    return found


# -- the generated role ------------------------------------------------------------------------------------------
def test_role_lists_what_the_scan_found(scanned):
    result = role.run(params(scanned), False)
    dest = scanned / "roles" / "web01"
    assert result["changed"] and result["role_name"] == "web01"
    defaults = load(dest, "defaults/main.yml")
    assert defaults["web01_packages"] == [{"name": "base-files", "version": "12.4+deb12u5"},
                                          {"name": "nginx", "version": "1.22.1-9"}]
    assert defaults["web01_pin_versions"] is False and defaults["web01_network_policy"] == "skip"
    assert [g["name"] for g in defaults["web01_groups"]] == ["alice", "svc", "web"]  # base ids and nobody left
    alice = defaults["web01_users"][0]
    assert alice == {"name": "alice", "uid": 1001, "group": "alice", "groups": ["sudo", "web"], "comment": "Alice,,,",
                     "home": "/home/alice", "shell": "/bin/bash", "system": False}
    assert defaults["web01_users"][1]["system"] is True
    assert defaults["web01_services"] == ["app.service"]
    variables = load(dest, "vars/main.yml")
    by_path = {item["path"]: item for key in ("web01_files", "web01_templates", "web01_network_templates")
               for item in variables[key]}
    assert by_path["/usr/local/bin/app"]["mode"] == "04755"
    assert "mode: \"04755\"" in (dest / "vars/main.yml").read_text()
    assert by_path["/etc/app/app.conf"]["owner"] == 4242 and by_path["/etc/app/app.conf"]["group"] == 4343
    assert by_path["/opt/app/data.bin"]["owner"] == "svc"
    assert {i["path"] for i in variables["web01_templates"]} == {
        "/etc/app/app.conf", "/etc/app/empty.conf", "/etc/systemd/system/app.service", "/etc/app/key.pem",
        "/etc/app/key-link.pem"}
    assert {i["path"] for i in variables["web01_network_templates"]} == {"/etc/network/interfaces"}
    assert "/etc/app/crlf.conf" in {i["path"] for i in variables["web01_files"]}  # CR: a template would change it
    assert variables["web01_hard_links"] == [{"path": "/etc/app/key-link2.pem", "target": "/etc/app/key-link.pem",
                                              "owner": "root", "group": "root", "mode": "0600"}]
    assert {"path": "/etc/app/dangling", "target": "../nowhere"} in variables["web01_links"]
    assert not any("wants" in link["path"] for link in variables["web01_links"])  # the service task makes it
    assert variables["web01_absent"] == ["/etc/nginx/sites-enabled/default"]
    assert {i["path"] for i in variables["web01_without_content"]} == {"/opt/app/big.bin", "/opt/app/notinarchive"}
    assert (dest / "files/usr/local/bin/app").read_bytes() == SETUID
    assert (dest / "files/opt/app/data.bin").read_bytes() == b"\0\1\2\3"
    assert not (dest / "files/etc/passwd").exists()  # accounts come from the users tasks
    assert result["counts"]["templates"] == 6 and result["counts"]["without_content"] == 2


def test_names_that_cannot_be_carried_are_listed_in_base64(scanned):
    result = role.run(params(scanned), False)
    dest = scanned / "roles" / "web01"
    expected = {base64.b64encode(NEWLINE_NAME).decode(), base64.b64encode(LATIN1_NAME).decode()}
    assert {entry.get("path_b64") or base64.b64encode(entry["path"].encode()).decode()
            for entry in result["skipped"]} == expected
    assert result["skipped_count"] == 2
    readme = (dest / "README.md").read_text()
    for encoded in expected:
        assert encoded in readme
    everything = b"".join(data for data, _mtime in tree(dest).values())
    assert b"odd\nname" not in everything and b"odd\\nname" not in everything and b"caf" not in everything
    assert not any("odd" in name or "caf" in name for name in tree(dest))
    assert "/opt/app/big.bin" in readme and "max_file_size" in readme and "/etc/passwd" in readme
    assert "/etc/fstab" not in readme and "UUID=1234" in readme


def test_braces_in_a_path_stay_text(scanned):
    role.run(params(scanned), False)
    text = (scanned / "roles" / "web01" / "vars/main.yml").read_text()
    assert 'path: !unsafe "/opt/app/{{ weird }}.txt"' in text
    assert (scanned / "roles" / "web01" / "files/opt/app/{{ weird }}.txt").read_bytes() == b"braces in the name\n"


@pytest_step_only
def test_templates_render_verbatim_as_ansible_renders_them(scanned):
    """Ansible's Templar with the template action's settings (trim_blocks on, newline \\n) gives the bytes back."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    role.run(params(scanned), False)
    templar = Templar(loader=DataLoader(), variables={"x": "X", "y": True})
    overrides = dict(trim_blocks=True, lstrip_blocks=False, newline_sequence="\n")
    for relative in ("etc/app/app.conf", "etc/systemd/system/app.service", "etc/network/interfaces"):
        source = (scanned / "roles" / "web01" / "templates" / relative).read_text()
        rendered = templar.copy_with_new_env(searchpath=[], available_variables={"x": "X"}).template(
            trust_as_template(source), escape_backslashes=False, overrides=overrides)
        assert rendered.encode("utf-8") == CONTENTS[relative.encode()]


@pytest.mark.parametrize("text", ["", "\n", "{% endraw %}", "a{%endraw%}b{%- endraw -%}\n{%+ endraw +%}",
                                  "{{ '{%' }}", "{% raw %}x{% endraw %}", "\n\n  lead\ntrail  \n\n", "#jinja2: x\n",
                                  "\u00e9\u2028\U0001f600 {# c #} {{ x }} {% if %}"])
@pytest_step_only
def test_template_source_renders_to_the_text(text):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    templar = Templar(loader=DataLoader(), variables={})
    rendered = templar.template(trust_as_template(role.template_source(text)), escape_backslashes=False,
                                overrides=dict(trim_blocks=True, lstrip_blocks=False, newline_sequence="\n"))
    assert (rendered or "") == text


@pytest_step_only
def test_role_passes_syntax_check_lint_and_applies_verbatim(scanned):
    """ansible-playbook --syntax-check and ansible-lint (production profile) on the role; its template and copy
    tasks' options, run against localhost into a temporary directory, give the scanned bytes and modes."""
    result = role.run(params(scanned), False)
    assert result["changed"]
    roles = scanned / "roles"
    (scanned / "site.yml").write_text("---\n- name: Rebuild web01\n  hosts: localhost\n  gather_facts: false\n"
                                      "  roles:\n    - role: web01\n")
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(roles), ANSIBLE_NOCOLOR="1", PATH=VENV + ":" + os.environ["PATH"])
    check = subprocess.run([os.path.join(VENV, "ansible-playbook"), "--syntax-check", "-i", "localhost,",
                            str(scanned / "site.yml")], env=env, capture_output=True, text=True, cwd=str(scanned),
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    lint = subprocess.run([os.path.join(VENV, "ansible-lint"), "--profile", "production", "--offline", "--nocolor",
                           "-q", str(roles / "web01")], env=env, capture_output=True, text=True, cwd=str(roles),
                          check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    out = scanned / "out"
    apply = scanned / "apply.yml"
    apply.write_text("""---
- name: Apply the role's file lists into a temporary prefix
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - roles/web01/vars/main.yml
  tasks:
    - name: Templates
      ansible.builtin.template:
        src: "roles/web01/templates/{{ item.src }}"
        dest: "%(out)s{{ item.path }}"
        mode: "{{ item.mode }}"
      loop: "{{ web01_templates }}"
    - name: Files
      ansible.builtin.copy:
        src: "roles/web01/files/{{ item.src }}"
        dest: "%(out)s{{ item.path }}"
        mode: "{{ item.mode }}"
      loop: "{{ web01_files }}"
""" % {"out": out})
    for directory in ("etc/app", "etc/systemd/system", "usr/local/bin", "opt/app"):
        (out / directory).mkdir(parents=True)
    run = subprocess.run([os.path.join(VENV, "ansible-playbook"), "-i", "localhost,", str(apply)], env=env,
                         capture_output=True, text=True, cwd=str(scanned), check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    for relative in (b"etc/app/app.conf", b"etc/systemd/system/app.service", b"usr/local/bin/app",
                     b"etc/app/crlf.conf", b"opt/app/{{ weird }}.txt"):
        assert (out / relative.decode()).read_bytes() == CONTENTS[relative], relative
    assert oct(os.stat(str(out / "usr/local/bin/app")).st_mode & 0o7777) == "0o4755"
    assert (out / "etc/app/empty.conf").read_bytes() == b""


# -- reruns, check mode, refusals -------------------------------------------------------------------------------
def test_same_report_gives_byte_identical_roles(scanned, tmp_path):
    role.run(params(scanned), False)
    role.run(params(scanned, dest=str(tmp_path / "other" / "web01"), state_dir=str(tmp_path / "s2")), False)
    first = {k: v[0] for k, v in tree(scanned / "roles" / "web01").items()}
    second = {k: v[0] for k, v in tree(tmp_path / "other" / "web01").items()}
    first.pop(role.MANIFEST), second.pop(role.MANIFEST)
    assert first == second


def test_rerun_changes_nothing_even_without_the_journal(scanned):
    role.run(params(scanned), False)
    before = tree(scanned / "roles" / "web01")
    again = role.run(params(scanned), False)
    assert not again["changed"] and again["decision"] == "skip" and again["counts"]["templates"] == 6
    fresh_journal = role.run(params(scanned, state_dir=str(scanned / "s3")), False)
    assert not fresh_journal["changed"]
    assert tree(scanned / "roles" / "web01") == before
    touched = scanned / "overlay.tar"
    os.utime(str(touched), ns=(1, 1))  # other inputs, the same role: kept as it is
    third = role.run(params(scanned), False)
    assert not third["changed"] and third["decision"] == "run"
    assert {k: v for k, v in tree(scanned / "roles" / "web01").items() if k != role.MANIFEST} == \
        {k: v for k, v in before.items() if k != role.MANIFEST}


def test_removed_role_is_made_again(scanned):
    role.run(params(scanned), False)
    os.rename(str(scanned / "roles" / "web01"), str(scanned / "roles" / "gone"))
    assert role.run(params(scanned), False)["changed"]
    assert (scanned / "roles" / "web01" / "tasks" / "main.yml").is_file()


def test_a_directory_that_is_not_a_generated_role_is_never_replaced(scanned):
    dest = scanned / "roles" / "web01"
    dest.mkdir(parents=True)
    (dest / "precious.txt").write_text("mine")
    for check_mode in (True, False):
        with pytest.raises(FerryError, match="no role made by scan_to_role"):
            role.run(params(scanned), check_mode)
    assert os.listdir(str(dest)) == ["precious.txt"]
    (dest / "precious.txt").unlink()
    assert role.run(params(scanned), False)["changed"]  # an empty directory is fine


def test_check_mode_writes_nothing_and_predicts_the_counts(scanned):
    predicted = role.run(params(scanned), True)
    assert predicted["changed"] and not (scanned / "roles").exists() and not (scanned / "s").exists()
    real = role.run(params(scanned), False)
    assert predicted["counts"] == real["counts"] and predicted["skipped"] == real["skipped"]
    assert not role.run(params(scanned), True)["changed"]


def test_without_contents_files_are_listed_not_copied(scanned):
    result = role.run(params(scanned, src=None), False)
    dest = scanned / "roles" / "web01"
    variables = load(dest, "vars/main.yml")
    assert variables["web01_files"] == [] and [i["path"] for i in variables["web01_templates"]] == \
        ["/etc/app/empty.conf"]  # an empty file needs no content
    assert result["counts"]["without_content"] == 12
    assert "give src or url" in (dest / "README.md").read_text()


@pytest.mark.parametrize("bad", [b"../etc/passwd", b"/etc/passwd", b"etc/../../x", b"etc//x", b"etc/./x"])
def test_path_leaving_the_root_is_refused(tmp_path, bad):
    report = write_report(tmp_path / "report.jsonl.gz", [file_record(bad, b"x")])
    with pytest.raises(FerryError, match="refused"):
        role.run(params(tmp_path, src=None, report=str(report)), False)
    assert not (tmp_path / "roles").exists() or not os.listdir(str(tmp_path / "roles"))


def test_path_under_a_scanned_symlink_is_refused(tmp_path):
    items = [link_record(b"etc/lnk", b"/root"), file_record(b"etc/lnk/authorized_keys", b"x")]
    report = write_report(tmp_path / "report.jsonl.gz", items)
    with pytest.raises(FerryError, match="under the symlink etc/lnk"):
        role.run(params(tmp_path, src=None, report=str(report)), False)


def test_damaged_object_fails_and_leaves_the_old_role(scanned):
    role.run(params(scanned), False)
    before = tree(scanned / "roles" / "web01")
    bad = dict(CONTENTS)
    (scanned / "overlay.tar").unlink()
    with tarfile.open(str(scanned / "overlay.tar"), "w") as tar:
        data = (scanned / "report.jsonl.gz").read_bytes()
        info = tarfile.TarInfo("report.jsonl.gz")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("objects/" + sha(bad[b"usr/local/bin/app"]))
        info.size = len(SETUID)
        tar.addfile(info, io.BytesIO(b"b" * len(SETUID)))
    with pytest.raises(FerryError, match="holds other bytes"):
        role.run(params(scanned), False)
    assert tree(scanned / "roles" / "web01") == before
    assert sorted(os.listdir(str(scanned / "roles"))) == ["web01"]


@pytest.mark.parametrize("name, message", [("Web-01", "not a valid role name"), ("1web", "not a valid role name")])
def test_bad_role_name_refused(scanned, name, message):
    with pytest.raises(FerryError, match=message):
        role.run(params(scanned, role_name=name), False)
    with pytest.raises(FerryError, match=message):
        role.run(params(scanned, dest=str(scanned / "roles" / name)), False)


def test_a_role_name_other_than_its_directory_is_warned_of(scanned):
    result = role.run(params(scanned, role_name="web02"), False)
    assert "rename" in result["warnings"][0] and "web02" in result["warnings"][0]
    assert "web02_packages" in (scanned / "roles" / "web01" / "defaults/main.yml").read_text()
    assert "warnings" not in role.run(params(scanned, dest=str(scanned / "roles" / "web03"),
                                             state_dir=str(scanned / "s3")), False)


def test_options_refused(scanned):
    with pytest.raises(FerryError, match="max_file_size"):
        role.run(params(scanned, max_file_size=-1), False)
    with pytest.raises(FerryError, match="at most one of url"):
        role.run(params(scanned, url="http://127.0.0.1:1/", instance="x"), False)
    with pytest.raises(FerryError, match="instance"):
        role.run(params(scanned, src=None, url="http://127.0.0.1:1/"), False)


def test_include_selects_the_prefixes(scanned):
    result = role.run(params(scanned, include=["/opt/"]), False)
    variables = load(scanned / "roles" / "web01", "vars/main.yml")
    assert {i["path"] for i in variables["web01_files"]} == {"/opt/app/data.bin", "/opt/app/{{ weird }}.txt"}
    assert result["counts"]["templates"] == 0 and result["skipped_count"] == 0


def test_templates_off_copies_everything(scanned):
    role.run(params(scanned, templates=False), False)
    variables = load(scanned / "roles" / "web01", "vars/main.yml")
    assert variables["web01_templates"] == [] and variables["web01_network_templates"] == []
    assert (scanned / "roles/web01/files/etc/app/app.conf").read_bytes() == JINJA


def test_platform_from_the_scanned_distribution(scanned, tmp_path):
    role.run(params(scanned), False)
    meta = load(scanned / "roles" / "web01", "meta/main.yml")
    assert meta["galaxy_info"]["platforms"] == [{"name": "Debian", "versions": ["bookworm"]}]
    assert role._platform({"distribution": "rocky", "version": "9.3"}) == {"name": "EL", "versions": ["9"]}
    assert role._platform({"distribution": "gentoo"}) == {"name": "GenericLinux", "versions": ["all"]}


# -- the YAML writer ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["plain/path", "yes", "No", "null", "~", "1.22.1-9", "0644", "a: b", "- x",
                                   "#x", "x #y", " lead", "trail ", "é\u2028\x85\ufeff\U0001f600", "tab\there",
                                   "q\"uote\\back", "a" * 300, (" " * 150) + "x", "x" + " " * 150,
                                   "{{ x }}", "%x", "@x", "`x", "!x", "&x", "*x", "|", ">", "?", "",
                                   "key:", ".inf", "12:30", "1e3", "0x1F"])
def test_yaml_scalars_read_back_the_same(value):
    text = dump({"key": value, "list": [value, {"k": value}]})
    assert all(len(line) <= 160 for line in text.splitlines())
    assert yaml.safe_load(text) == {"key": value, "list": [value, {"k": value}]}


def test_unsafe_strings_carry_the_tag():
    text = dump({"k": Unsafe("{{ x }}")})
    assert text == '---\nk: !unsafe "{{ x }}"\n'
    loaded = yaml.load(text, Loader=_UnsafeLoader)
    assert loaded == {"k": "{{ x }}"}


class _UnsafeLoader(yaml.SafeLoader):
    pass


_UnsafeLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def test_truncated_report_is_refused(tmp_path):
    report = write_report(tmp_path / "report.jsonl.gz")
    data = report.read_bytes()
    report.write_bytes(data[:len(data) // 2])
    with pytest.raises(FerryError, match="truncated|damaged"):
        role.run(params(tmp_path, src=None), False)


def test_manifest_records_the_fingerprint(scanned):
    role.run(params(scanned), False)
    manifest = json.loads((scanned / "roles" / "web01" / role.MANIFEST).read_text())
    assert manifest["tree"] == role.tree_digest(str(scanned / "roles" / "web01"))
    assert manifest["counts"]["packages"] == 2


# -- a real scan: prepared root -> host_scan -> scan_upload (archive, store) -> scan_to_role ---------------------
@pytest.fixture(scope="module")
def real_scan(tmp_path_factory):
    from ansible_collections.ferry.migrate.plugins.modules import host_scan, scan_upload
    from tests.support.scan_tree import prepared_for_tests

    facts = prepared_for_tests(tmp_path_factory)
    base = tmp_path_factory.mktemp("real")
    scanned = host_scan.run(dict(
        root=os.fsdecode(facts["root"]), dest=str(base / "report.jsonl.gz"), roots=["/"], excludes=[],
        default_excludes=True, packages=True, hash_workers=2, one_file_system=True, state_dir=str(base / "s"),
        step=None, force=False), False)
    upload = dict((name, option.get("default")) for name, option in scan_upload.argument_spec().items())
    upload.update(report=scanned["report"], state_dir=str(base / "s"), dest=str(base / "overlay.tar"))
    scan_upload.run(upload, False)
    return facts, base


@pytest_step_only
def test_real_scan_becomes_a_role_that_lints(real_scan, tmp_path):
    facts, base = real_scan
    result = role.run(params(base, dest=str(tmp_path / "roles" / "rebuilt"), state_dir=str(tmp_path / "s"),
                             max_file_size=1 << 20), False)
    dest = tmp_path / "roles" / "rebuilt"
    variables = load(dest, "vars/main.yml")
    defaults = load(dest, "defaults/main.yml")
    assert defaults["rebuilt_services"] == ["ferry-demo.service"]
    assert any(p["name"] == "ferry-tool" for p in defaults["rebuilt_packages"])
    files = {item["path"]: item for item in variables["rebuilt_files"]}
    assert files["/opt/app/bin/suid-helper"]["mode"] == "04755"
    assert (dest / "files/opt/app/bin/suid-helper").read_bytes() == facts["added"][facts["setuid"]]
    assert {"path": "/opt/app/links/dangling", "target": "../nowhere"} in variables["rebuilt_links"]
    assert [link["path"] for link in variables["rebuilt_hard_links"]] == ["/opt/app/hard/b"]
    assert "/opt/app/sparse.img" in {i["path"] for i in variables["rebuilt_without_content"]}  # 8 MiB > 1 MiB
    assert files["/opt/app/data/blob.bin"]["owner"] == 4242
    assert "/opt/ferry-data/cache" in variables["rebuilt_absent"]
    assert (dest / "templates/etc/ferry-local.conf").read_text() == "{% raw %}local = true\n{% endraw %}"
    readme = (dest / "README.md").read_text()
    for name in (facts["newline_name"], facts["non_utf8_name"]):
        assert base64.b64encode(name).decode() in readme
        assert name.rsplit(b"/", 1)[1][:5].decode() not in (dest / "vars/main.yml").read_text()
    assert result["skipped_count"] >= 2
    (tmp_path / "site.yml").write_text("---\n- name: Rebuild\n  hosts: all\n  roles:\n    - role: rebuilt\n")
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(tmp_path / "roles"), PATH=VENV + ":" + os.environ["PATH"])
    check = subprocess.run([os.path.join(VENV, "ansible-playbook"), "--syntax-check", "-i", "localhost,",
                            str(tmp_path / "site.yml")], env=env, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    lint = subprocess.run([os.path.join(VENV, "ansible-lint"), "--profile", "production", "--offline", "--nocolor",
                           "-q", str(dest)], env=env, capture_output=True, text=True, cwd=str(tmp_path), check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_store_gives_the_same_role_as_the_archive(real_scan, tmp_path):
    """Contents from the store, objects over the part size sent in pieces, make the same role as the archive's."""
    from ansible_collections.ferry.migrate.plugins.modules import scan_upload
    from tests.support.dav_standin import DavStandin

    _facts, base = real_scan
    with DavStandin(user="ferry", password="pw") as dav:
        upload = dict((name, option.get("default")) for name, option in scan_upload.argument_spec().items())
        upload.update(report=str(base / "report.jsonl.gz"), state_dir=str(tmp_path / "s0"), url=dav.url,
                      instance="web01", url_username="ferry", url_password="pw", part_size=1 << 20, retries=0)
        scan_upload.run(upload, False)
        common = dict(max_file_size=16 << 20, state_dir=str(tmp_path / "s"))
        from_store = role.run(params(base, src=None, url=dav.url, instance="web01", url_username="ferry",
                                     url_password="pw", dest=str(tmp_path / "a" / "web01"), **common), False)
    from_archive = role.run(params(base, dest=str(tmp_path / "b" / "web01"), **common), False)
    assert from_store["counts"] == from_archive["counts"] and from_store["counts"]["without_content"] == 0
    first = {k: v[0] for k, v in tree(tmp_path / "a" / "web01").items() if k != role.MANIFEST}
    second = {k: v[0] for k, v in tree(tmp_path / "b" / "web01").items() if k != role.MANIFEST}
    assert first == second
    assert len(first["files/opt/app/sparse.img"]) == 8 << 20  # 8 pieces of 1 MiB put together


def test_files_kept_from_others_stay_private_in_the_role(scanned):
    role.run(params(scanned), False)
    dest = scanned / "roles" / "web01"
    assert os.stat(str(dest / "templates/etc/app/key.pem")).st_mode & 0o777 == 0o600
    assert os.stat(str(dest / "templates/etc/app/app.conf")).st_mode & 0o777 == 0o644
    assert os.stat(str(dest / "files/usr/local/bin/app")).st_mode & 0o777 == 0o644
    assert not (dest / ".objects").exists()


@pytest_step_only
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="{}%#-+ \n\tendraw\u00e9", max_size=60))
def test_any_text_renders_verbatim(text):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    templar = Templar(loader=DataLoader(), variables={})
    rendered = templar.template(trust_as_template(role.template_source(text)), escape_backslashes=False,
                                overrides=dict(trim_blocks=True, lstrip_blocks=False, newline_sequence="\n"))
    assert (rendered or "") == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_string_reads_back_from_the_yaml(text):
    value = {"key": text, "items": [text, {"k": text}]}
    document = dump(value)
    assert all(len(line) <= 160 for line in document.splitlines())
    assert yaml.safe_load(document) == value


def test_a_path_listed_twice_is_refused(tmp_path):
    items = [file_record(b"etc/twice", b""), file_record(b"etc/twice", b"")]
    report = write_report(tmp_path / "report.jsonl.gz", items)
    with pytest.raises(FerryError, match="lists that path twice"):
        role.run(params(tmp_path, src=None, report=str(report)), False)
    assert os.listdir(str(tmp_path / "roles")) == []


@pytest_step_only
def test_an_empty_scan_of_an_unknown_system_still_lints(tmp_path):
    header = dict(HEADER, system={"distribution": "gentoo", "version": "2.15", "arch": "amd64"}, install_profile={})
    report = write_report(tmp_path / "report.jsonl.gz", [], header=header)
    dest = tmp_path / "roles" / "empty_host"
    result = role.run(params(tmp_path, src=None, report=str(report), dest=str(dest)), False)
    assert set(result["counts"].values()) == {0}
    assert load(dest, "defaults/main.yml")["empty_host_packages"] == []
    assert load(dest, "meta/main.yml")["galaxy_info"]["platforms"] == [{"name": "GenericLinux", "versions": ["all"]}]
    env = dict(os.environ, PATH=VENV + ":" + os.environ["PATH"])
    lint = subprocess.run([os.path.join(VENV, "ansible-lint"), "--profile", "production", "--offline", "--nocolor",
                           "-q", str(dest)], env=env, capture_output=True, text=True, cwd=str(tmp_path), check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


class PieceSource:
    """A store's way of sending objects: ``(sha256, offset, reader, length)`` pieces, in the order given."""
    name = "the test store"

    def __init__(self, pieces):
        self.list = pieces

    def pieces(self, _wanted):
        for sha_value, offset, data in self.list:
            yield sha_value, offset, io.BytesIO(data), len(data)
        yield None, ("scan", "part-00001.tar"), None, 0


BLOB = bytes(range(256)) * 40


def pieces_of(data, order):
    size = len(data) // 4
    cuts = [(offset, data[offset:offset + size if offset < 3 * size else len(data)]) for offset in
            (0, size, 2 * size, 3 * size)]
    return [(sha(data), cuts[i][0], cuts[i][1]) for i in order]


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [2, 0, 3, 1]])
@pytest.mark.parametrize("dry", [False, True])
def test_objects_in_pieces_are_put_together_and_checked(tmp_path, order, dry):
    root = None if dry else str(tmp_path)
    contents = role.Contents(root, {sha(BLOB): len(BLOB)}, set(), PieceSource(pieces_of(BLOB, order)))
    done = []
    contents.fill(done.append)
    assert contents.have == {sha(BLOB)} and done == [1]
    if not dry:
        assert (tmp_path / ".objects" / sha(BLOB)).read_bytes() == BLOB
    contents.cleanup()


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0]])
def test_a_damaged_piece_is_refused(tmp_path, order):
    pieces = pieces_of(BLOB, order)
    pieces[1] = (pieces[1][0], pieces[1][1], b"\xff" * len(pieces[1][2]))
    for root in (str(tmp_path), None):
        contents = role.Contents(root, {sha(BLOB): len(BLOB)}, set(), PieceSource(pieces))
        checked = root is not None or order == [0, 1, 2, 3]  # out of order in check mode: left to the real run
        with pytest.raises(FerryError, match="holds other bytes") if checked else contextlib.nullcontext():
            contents.fill()
        contents.cleanup()


def test_a_missing_piece_leaves_the_object_without_content(tmp_path):
    contents = role.Contents(str(tmp_path), {sha(BLOB): len(BLOB)}, set(), PieceSource(pieces_of(BLOB, [0, 1, 3])))
    contents.fill()
    assert contents.have == set()
