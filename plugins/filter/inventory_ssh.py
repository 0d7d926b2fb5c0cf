# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: inventory_ssh
short_description: How the inventory reaches a host over ssh (address, port, user, key, ssh arguments)
version_added: 0.2.0
description:
  - Reads from a host's variables (C(hostvars[host])) what Ansible's ssh connection uses to reach it, so that a
    command run on another host (rsync over ssh) can reach it the same way.
  - The result is the input of P(ferry.migrate.rsync_ssh#filter), and the defaults of the roles' C(*_rsync_source),
    C(*_rsync_port), C(*_rsync_user), C(*_rsync_ssh_key) and C(*_rsync_ssh_args) options.
author:
  - ferry.migrate maintainers (@ferry-migrate)
positional: _input
options:
  _input:
    description: The host's variables, C(hostvars[host]).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The ssh command rsync uses on this host to reach the host `target1` as the inventory does
  ansible.builtin.debug:
    msg: "{{ hostvars['target1'] | ferry.migrate.inventory_ssh | ferry.migrate.rsync_ssh }}"

- name: Only the port
  ansible.builtin.debug:
    msg: "{{ (hostvars['target1'] | ferry.migrate.inventory_ssh).port }}"
"""

RETURN = r"""
_value:
  description:
    - C(host) - C(ansible_host), else C(ansible_ssh_host), else the inventory name.
    - C(port) - C(ansible_port), else C(ansible_ssh_port), else empty (ssh's own default), as a string.
    - C(user) - C(ansible_user), else C(ansible_ssh_user), else empty.
    - C(key) - C(ansible_ssh_private_key_file), else C(ansible_private_key_file), else empty. A path on the
      controller, the same file on another host only when that host has it at the same path.
    - C(args) - C(ansible_ssh_common_args) and C(ansible_ssh_extra_args), joined by a space.
  type: dict
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# Each field: the variables read, the first one set wins (Ansible's own order of precedence between the aliases).
FIELDS = (
    ("host", ("ansible_host", "ansible_ssh_host", "inventory_hostname")),
    ("port", ("ansible_port", "ansible_ssh_port")),
    ("user", ("ansible_user", "ansible_ssh_user")),
    ("key", ("ansible_ssh_private_key_file", "ansible_private_key_file")),
)


def _first(hostvars, names):
    for name in names:
        value = hostvars.get(name)  # hostvars templates each variable on access
        if value is not None and value != "":
            return str(value)
    return ""


def inventory_ssh(hostvars):
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError("inventory_ssh expects a host's variables (hostvars[host]), not %s"
                                 % type(hostvars).__name__)
    found = dict((field, _first(hostvars, names)) for field, names in FIELDS)
    args = (_first(hostvars, [name]).strip() for name in ("ansible_ssh_common_args", "ansible_ssh_extra_args"))
    found["args"] = " ".join(part for part in args if part)
    return found


class FilterModule(object):
    def filters(self):
        return {"inventory_ssh": inventory_ssh}
