# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connecting to MariaDB / MySQL: the options of the ``ferry.migrate.mysql`` doc fragment (named as community.mysql
names them), PyMySQL's keyword arguments made of them, and a private option file for the client programs
(``mariadb-dump``), so that a password never shows on a command line.

PyMySQL is imported here, guarded: a module reports a missing one with ``missing_required_lib("PyMySQL")``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, check_paths, check_ranges

try:
    import pymysql
except ImportError as exc:  # the modules report it with missing_required_lib
    pymysql = None
    PYMYSQL_IMPORT_ERROR = exc
else:
    PYMYSQL_IMPORT_ERROR = None

RANGES = {"login_port": (1, 65535), "connect_timeout": (1, 3600)}
CLIENT_MAX_PACKET = 1 << 30  # the protocol's largest packet: the server's max_allowed_packet is the real limit


def mysql_argument_spec():
    """The options of the ``ferry.migrate.mysql`` doc fragment, for a module's argument spec."""
    return dict(
        login_host=dict(type="str", default="localhost"),
        login_port=dict(type="int", default=3306),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        login_unix_socket=dict(type="str"),
        config_file=dict(type="path", default="~/.my.cnf"),
        connect_timeout=dict(type="int", default=30),
        ca_cert=dict(type="path", aliases=["ssl_ca"]),
        client_cert=dict(type="path", aliases=["ssl_cert"]),
        client_key=dict(type="path", aliases=["ssl_key"]),
        check_hostname=dict(type="bool"),
    )


def check_connection_options(params):
    """Refuse bad connection options before anything is recorded."""
    check_ranges(params, RANGES)
    check_paths(params, ("config_file", "ca_cert", "client_cert", "client_key"))
    if not (params.get("login_host") or "").strip() and not params.get("login_unix_socket"):
        raise FerryError("login_host is empty: give a host name or address, or login_unix_socket")


def server_identity(params):
    """What names the server and the account, for a step's fingerprint (never the password)."""
    return {
        "host": params.get("login_host"),
        "port": params.get("login_port"),
        "socket": params.get("login_unix_socket"),
        "user": params.get("login_user"),
    }


def describe(params):
    """The server as messages name it: ``user@host:port`` or ``user@socket``."""
    where = params.get("login_unix_socket") or "%s:%s" % (params.get("login_host"), params.get("login_port"))
    return "%s@%s" % (params.get("login_user") or "(default user)", where)


def _config_file(params):
    """The option file to read, like community.mysql: ``config_file`` when it exists, else none."""
    path = params.get("config_file")
    if path:
        path = os.path.expanduser(path)
        if os.path.isfile(path):
            return path
    return None


def _tls(params):
    tls = {}
    for option, key in (("ca_cert", "ca"), ("client_cert", "cert"), ("client_key", "key")):
        if params.get(option):
            tls[key] = params[option]
    if params.get("check_hostname") is not None:
        tls["check_hostname"] = params["check_hostname"]
    return tls


def driver_kwargs(params, database=None):
    """PyMySQL's ``connect()`` keyword arguments: the options given win over the option file's ``[client]``
    values, as in community.mysql; the socket, when given, instead of host and port."""
    kwargs = dict(connect_timeout=params.get("connect_timeout") or 30, autocommit=True, charset="utf8mb4",
                  max_allowed_packet=CLIENT_MAX_PACKET, local_infile=False)
    if params.get("login_unix_socket"):
        kwargs["unix_socket"] = params["login_unix_socket"]
    else:
        kwargs["host"] = params.get("login_host")
        kwargs["port"] = params.get("login_port")
    if params.get("login_user") is not None:
        kwargs["user"] = params["login_user"]
    if params.get("login_password") is not None:
        kwargs["password"] = params["login_password"]
    config = _config_file(params)
    if config:
        kwargs["read_default_file"] = config
    tls = _tls(params)
    if tls:
        kwargs["ssl"] = tls
    if database:
        kwargs["database"] = database
    return kwargs


def connect(params, database=None):
    """A PyMySQL connection (autocommit, as the client runs a dump); a clear error when it cannot be made."""
    if pymysql is None:
        raise FerryError("PyMySQL is not installed on this host (pip install PyMySQL): %s" % PYMYSQL_IMPORT_ERROR)
    try:
        return pymysql.connect(**driver_kwargs(params, database))
    except pymysql.err.MySQLError as exc:
        raise FerryError("cannot connect to MariaDB/MySQL as %s: %s" % (describe(params), error_text(exc)))
    except (OSError, ValueError) as exc:  # a TLS file that cannot be read, say
        raise FerryError("cannot connect to MariaDB/MySQL as %s: %s" % (describe(params), exc))


def error_text(exc):
    """``(1045) Access denied ...`` from a PyMySQL error."""
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return "(%d) %s" % (args[0], args[1])
    return str(exc) or exc.__class__.__name__


def error_code(exc):
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


# -- the client programs -------------------------------------------------------------------------------------------
def _option_value(value):
    """A value as an option file reads it back: double-quoted, backslash and quote escaped."""
    text = str(value)
    for old, new in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = text.replace(old, new)
    return '"%s"' % text


def client_options(params):
    """The ``[client]`` lines of the private option file (without the password when none is given). Only options
    every client program knows: ``mariadb-dump`` refuses ``connect-timeout``, so the module's own connection (made
    first, with ``connect_timeout``) is what finds a dead server."""
    lines = []
    config = _config_file(params)
    if config:
        lines.append("!include %s" % config)  # read first: what is given below wins
    lines.append("[client]")
    if params.get("login_unix_socket"):
        lines += ["protocol=SOCKET", "socket=%s" % _option_value(params["login_unix_socket"])]
    else:
        lines += ["protocol=TCP", "host=%s" % _option_value(params.get("login_host")),
                  "port=%d" % params.get("login_port")]
    if params.get("login_user") is not None:
        lines.append("user=%s" % _option_value(params["login_user"]))
    if params.get("login_password") is not None:
        lines.append("password=%s" % _option_value(params["login_password"]))
    for option, name in (("ca_cert", "ssl-ca"), ("client_cert", "ssl-cert"), ("client_key", "ssl-key")):
        if params.get(option):
            lines.append("%s=%s" % (name, _option_value(params[option])))
    if params.get("check_hostname"):
        lines.append("ssl-verify-server-cert")
    return "\n".join(lines) + "\n"


class ClientOptionFile:
    """``with ClientOptionFile(params) as path``: the client's option file, mode 0600 in a private directory (0700),
    removed at the end; give it as the program's first argument, ``--defaults-file=<path>``."""

    def __init__(self, params):
        self.params = params
        self.directory = None

    def __enter__(self):
        self.directory = tempfile.mkdtemp(prefix="ferry-sql-")
        path = os.path.join(self.directory, "client.cnf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(client_options(self.params))
        return path

    def __exit__(self, *_exc):
        shutil.rmtree(self.directory, ignore_errors=True)
        return False
