# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters building rsync's ssh command from the inventory (ferry.migrate.inventory_ssh, ferry.migrate.rsync_ssh),
alone and as the three roles copying with rsync over ssh use them: each role's rsync_* options default to the
inventory's connection of the host it reaches, a value set wins, and no role builds the command itself."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shlex
import subprocess
import sys

import pytest
from ansible.errors import AnsibleFilterError

import ansible_collections.ferry.migrate as collection
from ansible_collections.ferry.migrate.plugins.filter.inventory_ssh import inventory_ssh
from ansible_collections.ferry.migrate.plugins.filter.rsync_ssh import rsync_ssh

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
COLLECTIONS = os.path.dirname(os.path.dirname(os.path.dirname(list(collection.__path__)[0])))
BASE = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]


def test_rsync_ssh_quotes_each_word_and_appends_the_args_as_they_are():
    command = rsync_ssh({"host": "ignored", "port": 2222, "user": "zen oss", "key": "/keys/it's",
                         "args": "-o UserKnownHostsFile=/k/known -o StrictHostKeyChecking=yes"})
    assert command.startswith("ssh -o BatchMode=yes -o ConnectTimeout=30 -p 2222 ")
    # rsync splits -e on spaces and keeps quoted parts together, as a shell does
    assert shlex.split(command) == BASE + ["-p", "2222", "-l", "zen oss", "-i", "/keys/it's", "-o",
                                           "UserKnownHostsFile=/k/known", "-o", "StrictHostKeyChecking=yes"]


@pytest.mark.parametrize("reach", [{}, {"port": "", "user": None, "key": "  ", "args": ""}])
def test_rsync_ssh_leaves_empty_options_to_ssh(reach):
    assert rsync_ssh(reach) == " ".join(BASE)


def test_rsync_ssh_takes_a_newline_in_a_key_path_as_one_word():
    assert shlex.split(rsync_ssh({"key": "/k/a\nb"}))[-2:] == ["-i", "/k/a\nb"]


@pytest.mark.parametrize("port", [1, "65535", " 22 "])
def test_rsync_ssh_takes_ports_in_range(port):
    assert shlex.split(rsync_ssh({"port": port}))[-2:] == ["-p", str(port).strip()]


@pytest.mark.parametrize("port", [0, 65536, "22x", "-1", "٣", "2 2", 1.5])
def test_rsync_ssh_refuses_a_port_out_of_range(port):
    with pytest.raises(AnsibleFilterError, match="port .* must be a number from 1 to 65535"):
        rsync_ssh({"port": port})


@pytest.mark.parametrize("reach, message", [
    ({"prot": 22}, "unknown key.*prot"),
    (["port", 22], "expects a dict"),
    ("ssh -p 22", "expects a dict"),
])
def test_rsync_ssh_refuses_what_is_no_reach(reach, message):
    with pytest.raises(AnsibleFilterError, match=message):
        rsync_ssh(reach)


def test_inventory_ssh_reads_ansible_s_variables_in_their_order():
    assert inventory_ssh({"inventory_hostname": "h", "ansible_host": "10.0.0.5", "ansible_ssh_host": "old",
                          "ansible_port": 2222, "ansible_ssh_port": 22, "ansible_user": "u", "ansible_ssh_user": "o",
                          "ansible_ssh_private_key_file": "/k", "ansible_private_key_file": "/o",
                          "ansible_ssh_common_args": "-o A=1 ", "ansible_ssh_extra_args": " -v"}) == {
        "host": "10.0.0.5", "port": "2222", "user": "u", "key": "/k", "args": "-o A=1 -v"}
    aliases = {"inventory_hostname": "h", "ansible_ssh_host": "old", "ansible_ssh_port": 22, "ansible_ssh_user": "o",
               "ansible_private_key_file": "/o", "ansible_ssh_extra_args": "-v"}
    assert inventory_ssh(aliases) == {"host": "old", "port": "22", "user": "o", "key": "/o", "args": "-v"}
    # empty values are no values: the next alias, else ssh's own default
    empty = {"inventory_hostname": "h", "ansible_host": "", "ansible_port": None, "ansible_ssh_common_args": ""}
    assert inventory_ssh(empty) == {"host": "h", "port": "", "user": "", "key": "", "args": ""}


def test_inventory_ssh_refuses_what_is_no_host_s_variables():
    with pytest.raises(AnsibleFilterError, match="expects a host's variables"):
        inventory_ssh("target1")


def test_no_role_builds_the_ssh_command_itself():
    for top, _dirs, names in os.walk(os.path.join(ROOT, "roles")):
        for name in names:
            if name == "argument_specs.yml":  # documents what the defaults are
                continue
            text = open(os.path.join(top, name), errors="replace").read()
            assert "BatchMode" not in text and "ansible_ssh_private_key_file" not in text, os.path.join(top, name)


INVENTORY = """
all:
  vars:
    base: 2200
  hosts:
    nav3: {ansible_host: "{{ '10.0.0.' ~ 3 }}", ansible_port: "{{ base | int + 22 }}", ansible_user: nav,
           ansible_ssh_private_key_file: /keys/nav key, ansible_ssh_common_args: -o UserKnownHostsFile=/k/known}
    zenoss4: {ansible_ssh_host: z4.example, ansible_ssh_user: root, ansible_ssh_extra_args: -v}
    zenoss5: {}
    carbon: {}
"""

# Each role's defaults as the role sees them, on the host the role runs on (the perf and graphite roles reach another
# host, the export role is reached by the Zenoss 5 host), then printed: rsync_* and the command built from them.
PLAYBOOK = """
- hosts: "{{ on }}"
  gather_facts: false
  vars_files: ["{{ defaults }}"]
  tasks:
    - ansible.builtin.debug:
        msg: "REACH {{ reach | combine({'ssh': {'port': reach.port, 'user': reach.user, 'key': reach.key,
                                                'args': reach.args} | ferry.migrate.rsync_ssh}) | to_json }}"
      vars:
        reach:
          source: "{{ lookup('vars', role ~ '_rsync_source') }}"
          port: "{{ lookup('vars', role ~ '_rsync_port') }}"
          user: "{{ lookup('vars', role ~ '_rsync_user') }}"
          key: "{{ lookup('vars', role ~ '_rsync_ssh_key') }}"
          args: "{{ lookup('vars', role ~ '_rsync_ssh_args') }}"
"""


def defaults_seen(tmp_path, role, on, **extra):
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default",
               ANSIBLE_HOME=str(tmp_path / "ansible-home"), PYTHONWARNINGS="ignore")
    extra.update(on=on, role=role, defaults=os.path.join(ROOT, "roles", role, "defaults", "main.yml"),
                 ansible_connection="local", ansible_python_interpreter=sys.executable)
    done = subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "-i", str(tmp_path / "inventory.yml"),
                           str(tmp_path / "play.yml"), "-e", json.dumps(extra)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    return json.loads(re.search(r'"REACH (\{.*\})"', done.stdout).group(1).replace('\\"', '"'))


@pytest.mark.parametrize("role, on, more", [
    ("rrd_to_graphite", "carbon", {"rrd_to_graphite_source_host": "nav3"}),
    ("zenoss_perf", "carbon", {"zenoss_perf_target_host": "nav3", "zenoss_perf_bundle_dir": "/b"}),
])
def test_the_roles_reach_the_other_host_as_the_inventory_does(tmp_path, role, on, more):
    seen = defaults_seen(tmp_path, role, on, **more)
    assert seen == {"source": "10.0.0.3", "port": "2222", "user": "nav", "key": "/keys/nav key",
                    "args": "-o UserKnownHostsFile=/k/known",
                    "ssh": "ssh -o BatchMode=yes -o ConnectTimeout=30 -p 2222 -l nav -i '/keys/nav key' "
                           "-o UserKnownHostsFile=/k/known"}


def test_the_export_is_reached_as_the_inventory_reaches_it_and_options_set_win(tmp_path):
    seen = defaults_seen(tmp_path, "zenoss_export", "zenoss4")
    assert seen == {"source": "z4.example", "port": "", "user": "root", "key": "", "args": "-v",
                    "ssh": "ssh -o BatchMode=yes -o ConnectTimeout=30 -l root -v"}
    seen = defaults_seen(tmp_path, "zenoss_export", "zenoss5", zenoss_export_rsync_port=2022,
                         zenoss_export_rsync_ssh_key="/etc/ferry/id")
    assert seen["source"] == "zenoss5"
    assert seen["ssh"] == "ssh -o BatchMode=yes -o ConnectTimeout=30 -p 2022 -i /etc/ferry/id"
