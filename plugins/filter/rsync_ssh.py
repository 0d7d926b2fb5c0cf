# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: rsync_ssh
short_description: The ssh command for rsync's -e, from a port, user, key and ssh arguments
version_added: 0.2.0
description:
  - Builds C(ssh -o BatchMode=yes -o ConnectTimeout=30 [-p port] [-l user] [-i key] <args>) for C(rsync -e). Each
    word the filter adds is shell-quoted (rsync splits the command on spaces and keeps quoted parts together),
    C(args) is appended as it is, so it may hold several options.
  - C(BatchMode) makes ssh fail at once instead of asking for a password or a host key nobody can type in.
positional: _input
author:
  - ferry.migrate maintainers (@ferry-migrate)
options:
  _input:
    description:
      - C(port) (1 to 65535), C(user), C(key) (a private key file on the host running rsync) and C(args); each
        may be empty or left out. C(host) is allowed and not used, so that the result of
        P(ferry.migrate.inventory_ssh#filter) can be given as it is. Any other key is refused.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Pull a directory from the host `source1` over ssh as the inventory reaches it
  vars:
    reach: "{{ hostvars['source1'] | ferry.migrate.inventory_ssh }}"
  ansible.builtin.command:
    argv: [rsync, -e, "{{ reach | ferry.migrate.rsync_ssh }}", --archive, "{{ reach.host }}:/srv/data/", /srv/data/]

- name: With a port and key of its own
  ansible.builtin.debug:
    msg: "{{ {'port': 2222, 'user': 'zenoss', 'key': '/etc/ferry/id_ed25519'} | ferry.migrate.rsync_ssh }}"
  # ssh -o BatchMode=yes -o ConnectTimeout=30 -p 2222 -l zenoss -i /etc/ferry/id_ed25519
"""

RETURN = r"""
_value:
  description: The command, for C(rsync -e).
  type: str
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.sshcmd import ssh_command

KEYS = ("host", "port", "user", "key", "args")


def rsync_ssh(reach):
    if not isinstance(reach, Mapping):
        raise AnsibleFilterError("rsync_ssh expects a dict of port, user, key and args, not %s" % type(reach).__name__)
    unknown = sorted(str(key) for key in reach if key not in KEYS)
    if unknown:
        raise AnsibleFilterError("rsync_ssh: unknown key(s) %s; the keys are %s"
                                 % (", ".join(unknown), ", ".join(KEYS)))
    try:
        return ssh_command(*(reach.get(name) for name in ("port", "user", "key", "args")))
    except FerryError as exc:
        raise AnsibleFilterError("rsync_ssh: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"rsync_ssh": rsync_ssh}
