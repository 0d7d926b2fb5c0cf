# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ssh command rsync runs (``rsync -e``), built in one place for the ``rsync_ssh`` filter and ``file_sync``.

rsync splits the ``-e`` command on spaces and keeps single- or double-quoted parts together, as a shell does: every
word built here is shell-quoted; the caller's extra arguments are appended as they are (several options at once).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from shlex import quote

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError

# BatchMode: fail at once instead of asking for a password or a host key nobody can type in.
BASE = ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30")


def _text(value):
    return "" if value is None else str(value).strip()


def port_text(port):
    """``port`` (a number or a string, None or empty for ssh's own) as ssh's ``-p`` takes it, checked."""
    text = _text(port)
    if text and not (re.fullmatch("[0-9]{1,5}", text) and 1 <= int(text) <= 65535):
        raise FerryError("port %r must be a number from 1 to 65535 (or empty: ssh's own)" % text)
    return text


def ssh_argv(port=None, user=None, key=None, known_hosts=None, strict=False):
    """The words of the command. ``strict``: a host whose key is not in ``known_hosts`` (ssh's own files when
    None) is refused; ``key``: that key only, not whatever an agent offers."""
    argv = list(BASE)
    if strict:
        argv += ["-o", "StrictHostKeyChecking=yes"]
    if _text(known_hosts):
        argv += ["-o", "UserKnownHostsFile=%s" % _config_path(_text(known_hosts))]
    port = port_text(port)
    for option, value in (("-p", port), ("-l", _text(user)), ("-i", _text(key))):
        if value:
            argv += [option, value]
    if strict and _text(key):
        argv += ["-o", "IdentitiesOnly=yes"]
    return argv


def _config_path(path):
    """A path as an ssh ``-o`` value: ssh splits the value into words and expands ``%`` tokens in it."""
    return '"%s"' % re.sub(r'(["\\])', r"\\\1", path.replace("%", "%%"))


def ssh_command(port=None, user=None, key=None, args=None, known_hosts=None, strict=False):
    """The command line for ``rsync -e``: each word quoted, ``args`` appended as it is."""
    args = _text(args)
    words = [quote(word) for word in ssh_argv(port, user, key, known_hosts, strict)]
    return " ".join(words + ([args] if args else []))
