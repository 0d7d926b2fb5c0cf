# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MongoDB connection options: the spec matches the doc fragment, ranges and exclusivity are enforced, and no
message, identity or fingerprint ever carries the password."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

import pymongo
import pytest
import yaml

from ansible_collections.ferry.migrate.plugins.doc_fragments.mongodb import ModuleDocFragment
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import connection

SECRET = "s3cr:et@pw"


def _params(**over):
    spec = connection.mongodb_argument_spec()
    params = dict((name, option.get("default")) for name, option in spec.items())
    params.update(over)
    return params


def test_spec_matches_the_doc_fragment():
    docs = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = connection.mongodb_argument_spec()
    assert sorted(docs) == sorted(spec)
    for name, option in spec.items():
        doc = docs[name]
        assert doc["type"] == option["type"], name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("choices") == option.get("choices"), name
        assert sorted(doc.get("aliases", [])) == sorted(option.get("aliases", [])), name
    assert spec["login_password"]["no_log"] and spec["uri"]["no_log"] and spec["ssl_pem_passphrase"]["no_log"]
    assert spec["login_database"]["default"] == "admin"


@pytest.mark.parametrize("over, message", [
    (dict(login_port=0), "login_port=0 is out of range"),
    (dict(login_port=65536), "login_port=65536 is out of range"),
    (dict(connect_timeout=0), "connect_timeout=0 is out of range"),
    (dict(connect_timeout=3601), "connect_timeout=3601 is out of range"),
    (dict(login_host=" "), "login_host is empty"),
    (dict(uri="mongodb://h/", login_user="u"), "uri and login_user are mutually exclusive"),
    (dict(uri="mongodb://h/", login_port=1234), "uri and login_port are mutually exclusive"),
    (dict(uri="http://h/"), "uri must start with mongodb://"),
    (dict(login_password="x"), "login_password is given without login_user"),
    (dict(ssl_keyfile="/k"), "ssl_keyfile is given without ssl_certfile"),
    (dict(ssl_ca_certs=""), "ssl_ca_certs is an empty string"),
])
def test_bad_options_are_refused(over, message):
    with pytest.raises(FerryError, match=message):
        connection.check_connection_options(_params(**over))


def test_boundaries_are_accepted():
    for port in (1, 65535):
        connection.check_connection_options(_params(login_port=port, connect_timeout=3600))
    connection.check_connection_options(_params(uri="mongodb://u:p@h:1/?authSource=admin"))


def test_identity_and_description_never_hold_the_password():
    params = _params(login_host="db.example", login_port=27018, login_user="ferry", login_password=SECRET)
    assert connection.server_identity(params) == {"host": "db.example", "port": 27018, "user": "ferry",
                                                  "database": "admin"}
    assert connection.describe(params) == "ferry@db.example:27018"
    uri = _params(uri="mongodb://fe%40rry:pw%2Fx@h1:1,h2:2/DLAAS?authSource=DLAAS")
    assert connection.server_identity(uri) == {"uri": "mongodb://fe%40rry@h1:1,h2:2/DLAAS?authSource=DLAAS"}
    assert connection.describe(uri) == "fe@rry@h1:1,h2:2"
    assert "pw" not in repr(connection.server_identity(uri))


def test_client_options_direct_connection_and_timeouts():
    kwargs = connection.client_kwargs(_params(login_host="h", login_user="u", login_password="p",
                                              login_database="DLAAS", connect_timeout=7,
                                              auth_mechanism="SCRAM-SHA-1", ssl=True, ssl_cert_reqs="CERT_NONE"))
    assert kwargs["directConnection"] is True
    assert kwargs["serverSelectionTimeoutMS"] == kwargs["connectTimeoutMS"] == 7000
    assert kwargs["authSource"] == "DLAAS" and kwargs["authMechanism"] == "SCRAM-SHA-1"
    assert kwargs["tls"] is True and kwargs["tlsAllowInvalidCertificates"] is True
    assert "directConnection" not in connection.client_kwargs(_params(uri="mongodb://h/"))


def test_retry_writes_off_wins_over_the_uri():
    assert "retryWrites" not in connection.client_kwargs(_params(login_host="h"))
    kwargs = connection.client_kwargs(_params(uri="mongodb://h/?retryWrites=true"), retry_writes=False)
    client = pymongo.MongoClient("mongodb://h/?retryWrites=true", connect=False, **kwargs)
    try:
        assert client.options.retry_writes is False
    finally:
        client.close()


def test_closed_port_fails_clearly_within_the_timeout(closed_port):
    params = _params(login_host="127.0.0.1", login_port=closed_port, login_user="u", login_password=SECRET,
                     connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(FerryError) as caught:
        connection.connect(params)
    assert time.monotonic() - started < 15  # pymongo's own default is 30 s; a loaded CI host needs room
    assert str(caught.value).startswith("cannot reach 127.0.0.1:%d within 1s" % closed_port)
    assert SECRET not in str(caught.value)


class _Failure(Exception):
    def __init__(self, code):
        Exception.__init__(self, "server says %s" % SECRET)
        self.code = code


@pytest.mark.parametrize("code, message", [
    (18, "authentication failed for ferry (login_database admin) on h:1 (code 18)"),
    (13, "ferry is not authorised to read database DLAAS on h:1 (code 13)"),
    (2, "cannot connect to MongoDB as ferry@h:1: server says ********"),
])
def test_error_messages_by_code_never_show_the_password(code, message):
    params = _params(login_host="h", login_port=1, login_user="ferry", login_password=SECRET)
    error = connection.connection_error(params, _Failure(code), "DLAAS")
    assert str(error).startswith(message)
    assert SECRET not in str(error)


def test_uri_password_scrubbed_from_errors():
    params = _params(uri="mongodb://ferry:%s@h:1/" % "topsecret")
    error = connection.connection_error(params, Exception("bad mongodb://ferry:topsecret@h:1/ here"))
    assert "topsecret" not in str(error)


class _Module:
    def __init__(self):
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


def test_check_pymongo_requires_4_3(monkeypatch):
    module = _Module()
    connection.check_pymongo(module)  # the venv's pymongo is new enough
    assert module.failed is None
    monkeypatch.setattr(connection.pymongo, "version_tuple", (4, 2, 0))
    monkeypatch.setattr(connection.pymongo, "version", "4.2.0")
    with pytest.raises(SystemExit):
        connection.check_pymongo(module)
    assert "pymongo>=4.3" in module.failed["msg"] and "4.2.0" in module.failed["msg"]
