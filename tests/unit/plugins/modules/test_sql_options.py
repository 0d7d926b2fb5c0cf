# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sql_dump / sql_import options without a server: the connection options as community.mysql names them, the
driver's arguments and the private option file made of them (the password never on a command line), bad values."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.sql import connection, dumper, importer
from ansible_collections.ferry.migrate.plugins.modules import sql_dump, sql_import


def base(**extra):
    params = dict((name, spec.get("default")) for name, spec in sql_import.argument_spec().items())
    params.update(src="/tmp/x.sql", database="zep", login_user="zenoss", login_password='pa"ss\\wo\nrd')
    params.update(extra)
    return params


def test_both_modules_take_the_fragments_options():
    names = set(connection.mysql_argument_spec())
    assert names == {"login_host", "login_port", "login_user", "login_password", "login_unix_socket", "config_file",
                     "connect_timeout", "ca_cert", "client_cert", "client_key", "check_hostname"}
    for module in (sql_dump, sql_import):
        spec = module.argument_spec()
        assert names <= set(spec) and spec["login_password"]["no_log"] is True
        assert {"state_dir", "step", "force"} <= set(spec)


def test_driver_arguments_follow_community_mysql(tmp_path):
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\nuser=other\n")
    kwargs = connection.driver_kwargs(base(config_file=str(cnf), ca_cert="/ca.pem", check_hostname=False), "zep")
    assert kwargs["host"] == "localhost" and kwargs["port"] == 3306 and kwargs["user"] == "zenoss"
    assert kwargs["read_default_file"] == str(cnf) and kwargs["database"] == "zep" and kwargs["autocommit"] is True
    assert kwargs["ssl"] == {"ca": "/ca.pem", "check_hostname": False}
    socket_kwargs = connection.driver_kwargs(base(login_unix_socket="/run/my.sock", config_file="/missing"))
    assert socket_kwargs["unix_socket"] == "/run/my.sock" and "host" not in socket_kwargs
    assert "read_default_file" not in socket_kwargs


def test_the_option_file_is_private_escaped_and_the_password_is_never_an_argument(tmp_path):
    params = base(login_host="db.example.com", client_cert="/c.pem", client_key="/k.pem", check_hostname=True)
    with connection.ClientOptionFile(params) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path) as handle:
            text = handle.read()
        command = dumper.dump_command("mariadb-dump", path, "zep", no_data=True)
    assert not os.path.exists(path)
    assert 'password="pa\\"ss\\\\wo\\nrd"' in text.splitlines()
    assert "protocol=TCP" in text and 'host="db.example.com"' in text and "ssl-verify-server-cert" in text
    assert command[1] == "--defaults-file=%s" % path and command[-2:] == ["--", "zep"]
    assert "--single-transaction" in command and "--routines" in command and "--no-data" in command
    assert not any("pa" in part and "ss" in part for part in command)


def test_the_option_file_includes_config_file_first(tmp_path):
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\npassword=x\n")
    text = connection.client_options(base(config_file=str(cnf), login_password=None, login_unix_socket="/s"))
    assert text.splitlines()[:4] == ["!include %s" % cnf, "[client]", "protocol=SOCKET", 'socket="/s"']
    assert "password" not in text


@pytest.mark.parametrize("extra, message", [
    ({"login_port": 0}, "login_port=0 is out of range"),
    ({"connect_timeout": 0}, "connect_timeout=0 is out of range"),
    ({"config_file": " "}, "config_file is an empty string"),
    ({"src": ""}, "src is an empty string"),
    ({"database": " "}, "database is empty"),
])
def test_bad_options_are_refused_before_anything(extra, message, tmp_path):
    with pytest.raises(FerryError, match=message):
        sql_import.run(base(state_dir=str(tmp_path), **extra), False)
    assert not os.listdir(str(tmp_path))


def test_a_missing_dump_and_a_bad_definer_are_clear(tmp_path):
    with pytest.raises(FerryError, match="cannot read the dump /nonexistent.sql"):
        sql_import.run(base(src="/nonexistent.sql", state_dir=str(tmp_path)), False)
    for value in ("nobody", "@host", "user@", ""):
        with pytest.raises(FerryError, match="give keep, strip or an account as user@host"):
            importer.parse_definer(value)
    assert importer.parse_definer("`zenoss`@`localhost`") == ("zenoss", "localhost")
    assert importer.definer_account("o'brien@%") == "'o''brien'@'%'"


def test_sql_dump_takes_a_missing_directory_and_refuses_a_file_in_the_way(tmp_path):
    params = dict((name, spec.get("default")) for name, spec in sql_dump.argument_spec().items())
    params.update(database="zep", dest=str(tmp_path / "no" / "deeper" / "zep.sql.gz"), state_dir=str(tmp_path / "s"))
    sql_dump.check_options(params)  # a run creates the directories
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_text("x")
    for dest, message in ((tmp_path / "file" / "zep.sql.gz", ".*/file is not a directory"),
                          (tmp_path / "file" / "a" / "zep.sql.gz", ".*/file is not a directory"),
                          (tmp_path, "is a directory: give the path of the file")):
        params["dest"] = str(dest)
        with pytest.raises(FerryError, match=message):
            sql_dump.run(params, True)


@pytest.mark.parametrize("content", [b"", b"-- MariaDB dump 10.19\n/* nothing */\n\n"])
def test_a_dump_without_any_statement_is_refused_not_imported_as_success(content, tmp_path):
    path = tmp_path / "empty.sql"
    path.write_bytes(content)
    with pytest.raises(FerryError, match=r"empty\.sql holds no SQL statement"):
        importer.scan(str(path))
