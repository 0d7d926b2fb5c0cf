# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connecting to MongoDB (and SecantusDB): the options of the ``ferry.migrate.mongodb`` doc fragment (named as
community.mongodb names them), a client made of them after a login check, and messages that name the server and
the account but never the password.

pymongo is imported here, guarded: a module reports a missing or too old one with :func:`check_pymongo`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, check_paths, check_ranges

try:
    import pymongo
    import pymongo.errors
except ImportError as exc:  # the modules report it with missing_required_lib
    pymongo = None
    PYMONGO_IMPORT_ERROR = exc
else:
    PYMONGO_IMPORT_ERROR = None

MIN_PYMONGO = (4, 3)  # DatetimeConversion (dates outside years 1..9999) came with 4.3
RANGES = {"login_port": (1, 65535), "connect_timeout": (1, 3600)}
# With uri, the URI says where and who: these options would be a second, conflicting answer.
URI_EXCLUSIVE = ("login_host", "login_port", "login_user", "login_password")
DEFAULTS = {"login_host": "localhost", "login_port": 27017}
AUTH_FAILED, UNAUTHORIZED = 18, 13


def mongodb_argument_spec():
    """The options of the ``ferry.migrate.mongodb`` doc fragment, for a module's argument spec."""
    return dict(
        login_host=dict(type="str", default="localhost"),
        login_port=dict(type="int", default=27017),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        login_database=dict(type="str", default="admin"),
        auth_mechanism=dict(type="str", choices=["SCRAM-SHA-256", "SCRAM-SHA-1"]),
        uri=dict(type="str", no_log=True),
        ssl=dict(type="bool", default=False, aliases=["tls"]),
        ssl_ca_certs=dict(type="path", aliases=["tlsCAFile"]),
        ssl_certfile=dict(type="path", aliases=["tlsCertificateKeyFile"], no_log=False),
        ssl_keyfile=dict(type="path", no_log=False),
        ssl_pem_passphrase=dict(type="str", no_log=True),
        ssl_cert_reqs=dict(type="str", choices=["CERT_REQUIRED", "CERT_OPTIONAL", "CERT_NONE"],
                           default="CERT_REQUIRED"),
        connect_timeout=dict(type="int", default=10),
    )


def pymongo_version():
    if pymongo is None:
        return None
    return tuple(int(part) for part in pymongo.version_tuple[:2])


def check_pymongo(module):
    """End the module with ``missing_required_lib`` when pymongo is missing or older than 4.3."""
    if pymongo is not None and pymongo_version() >= MIN_PYMONGO:
        return
    from ansible.module_utils.basic import missing_required_lib
    reason = None if pymongo is None else "pymongo %s is installed, %s or later is needed" % (
        pymongo.version, ".".join(str(part) for part in MIN_PYMONGO))
    module.fail_json(msg=missing_required_lib("pymongo>=4.3", reason=reason), exception=PYMONGO_IMPORT_ERROR)


def check_connection_options(params):
    """Refuse bad connection options before anything is recorded."""
    check_ranges(params, RANGES)
    check_paths(params, ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"))
    uri = params.get("uri")
    if uri is not None:
        if not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise FerryError("uri must start with mongodb:// or mongodb+srv://")
        given = [name for name in URI_EXCLUSIVE
                 if params.get(name) is not None and params.get(name) != DEFAULTS.get(name)]
        if given:
            raise FerryError("uri and %s are mutually exclusive: the URI names the server and the account"
                             % ", ".join(given))
    elif not (params.get("login_host") or "").strip():
        raise FerryError("login_host is empty: give a host name or address, or uri")
    if params.get("login_password") is not None and params.get("login_user") is None:
        raise FerryError("login_password is given without login_user")
    if params.get("ssl_keyfile") and not params.get("ssl_certfile"):
        raise FerryError("ssl_keyfile is given without ssl_certfile (the client certificate it is the key of)")


def _split_uri(uri):
    """(scheme, user or None, hosts, rest) of a MongoDB URI; the password is dropped."""
    scheme, _sep, tail = uri.partition("://")
    cut = min([pos for pos in (tail.find("/"), tail.find("?")) if pos >= 0] or [len(tail)])
    netloc, rest = tail[:cut], tail[cut:]
    user = None
    if "@" in netloc:
        userinfo, _sep, netloc = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
    return scheme, user, netloc, rest


def safe_uri(uri):
    """The URI with its password removed (``mongodb://user@host/...``)."""
    scheme, user, hosts, rest = _split_uri(uri)
    return "%s://%s%s%s" % (scheme, (user + "@") if user else "", hosts, rest)


def server_identity(params):
    """What names the server and the account, for a step's fingerprint (never the password)."""
    if params.get("uri"):
        return {"uri": safe_uri(params["uri"])}
    return {
        "host": params.get("login_host"),
        "port": params.get("login_port"),
        "user": params.get("login_user"),
        "database": params.get("login_database"),
    }


def where(params):
    """``host:port`` (or the URI's host list)."""
    if params.get("uri"):
        return _split_uri(params["uri"])[2]
    return "%s:%s" % (params.get("login_host"), params.get("login_port"))


def user(params):
    if params.get("uri"):
        from urllib.parse import unquote
        name = _split_uri(params["uri"])[1]
        return unquote(name) if name else None
    return params.get("login_user")


def describe(params):
    """The server as messages name it: ``user@host:port``."""
    return "%s@%s" % (user(params) or "(no user)", where(params))


def client_kwargs(params, retry_writes=True):
    """MongoClient's keyword arguments (without the URI); TLS files are handled by :func:`connect`."""
    timeout_ms = int(params.get("connect_timeout") or 10) * 1000
    kwargs = dict(serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, appname="ferry.migrate")
    if not retry_writes:
        kwargs["retryWrites"] = False  # over the URI's: keyword arguments win in MongoClient
    if not params.get("uri"):
        # SecantusDB (and a replica set member) advertises a set: talk to this node, do not discover.
        kwargs.update(host=params.get("login_host"), port=params.get("login_port"), directConnection=True)
        if params.get("login_user") is not None:
            kwargs.update(username=params["login_user"], password=params.get("login_password") or "",
                          authSource=params.get("login_database") or "admin")
    if params.get("auth_mechanism"):
        kwargs["authMechanism"] = params["auth_mechanism"]
    if params.get("ssl"):
        kwargs["tls"] = True
        if params.get("ssl_ca_certs"):
            kwargs["tlsCAFile"] = params["ssl_ca_certs"]
        if params.get("ssl_certfile"):
            kwargs["tlsCertificateKeyFile"] = params["ssl_certfile"]
        if params.get("ssl_pem_passphrase") is not None:
            kwargs["tlsCertificateKeyFilePassword"] = params["ssl_pem_passphrase"]
        # pymongo 4 has no "optional": anything but CERT_REQUIRED accepts a certificate it cannot verify.
        if params.get("ssl_cert_reqs", "CERT_REQUIRED") != "CERT_REQUIRED":
            kwargs["tlsAllowInvalidCertificates"] = True
    return kwargs


def _make_client(params, retry_writes):
    kwargs = client_kwargs(params, retry_writes)
    uri = params.get("uri")
    if params.get("ssl") and params.get("ssl_keyfile"):
        # pymongo 4 reads certificate and key from one file: join them in a private one, read when the client is
        # made (its TLS context is built then), removed right after.
        directory = tempfile.mkdtemp(prefix="ferry-mongo-")
        try:
            joined = os.path.join(directory, "client.pem")
            fd = os.open(joined, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                for path in (params["ssl_certfile"], params["ssl_keyfile"]):
                    with open(path, "rb") as part:
                        out.write(part.read().rstrip(b"\n") + b"\n")
            kwargs["tlsCertificateKeyFile"] = joined
            return pymongo.MongoClient(uri, **kwargs) if uri else pymongo.MongoClient(**kwargs)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return pymongo.MongoClient(uri, **kwargs) if uri else pymongo.MongoClient(**kwargs)


def connect(params, database=None, retry_writes=True):
    """A MongoClient, after ``ping`` and one command that needs a login (listing ``database``'s collections, by
    default ``login_database``'s); a :class:`FerryError` naming the cause otherwise. ``retry_writes=False`` for a
    caller whose writes are idempotent by themselves and resends them (the driver's retryable writes make the
    server keep a digest of every write command)."""
    if pymongo is None:
        raise FerryError("pymongo is not installed on this host (pip install 'pymongo>=4.3'): %s"
                         % PYMONGO_IMPORT_ERROR)
    try:
        client = _make_client(params, retry_writes)
    except (pymongo.errors.ConfigurationError, ValueError, TypeError, OSError) as exc:
        raise FerryError("cannot connect to MongoDB as %s: %s" % (describe(params), _scrub(params, exc)))
    try:
        client.admin.command("ping")
        client[database or params.get("login_database") or "admin"].list_collection_names()
    except Exception as exc:
        client.close()
        raise connection_error(params, exc, database)
    return client


def connection_error(params, exc, database=None):
    """The FerryError for a failed login or an unreachable server (codes, never messages, decide)."""
    timeout = params.get("connect_timeout") or 10
    if pymongo is not None and isinstance(exc, pymongo.errors.ServerSelectionTimeoutError):
        reason = _scrub(params, exc).split(" (configured timeouts")[0].split(", Timeout:")[0]
        return FerryError("cannot reach %s within %ss (%s)" % (where(params), timeout, reason))
    code = getattr(exc, "code", None)
    login_db = params.get("login_database") or "admin"
    if params.get("uri"):
        login_db = _uri_auth_source(params["uri"]) or login_db
    if code == AUTH_FAILED:
        return FerryError("authentication failed for %s (login_database %s) on %s (code 18)"
                          % (user(params) or "(no user)", login_db, where(params)))
    if code == UNAUTHORIZED:
        return FerryError("%s is not authorised to read database %s on %s (code 13); grant it read access"
                          % (user(params) or "(no user)", database or login_db, where(params)))
    return FerryError("cannot connect to MongoDB as %s: %s" % (describe(params), _scrub(params, exc)))


def _uri_auth_source(uri):
    query = _split_uri(uri)[3].partition("?")[2]
    for pair in query.split("&"):
        key, _sep, value = pair.partition("=")
        if key.lower() == "authsource":
            return value
    return None


def _scrub(params, exc):
    """An error's text without the password, should a driver ever repeat it."""
    text = str(exc) or exc.__class__.__name__
    secrets = [params.get("login_password"), params.get("ssl_pem_passphrase")]
    if params.get("uri"):
        _scheme, _sep, tail = params["uri"].partition("://")
        userinfo = tail.partition("/")[0].rpartition("@")[0]
        secrets.append(userinfo.partition(":")[2])
        text = text.replace(params["uri"], safe_uri(params["uri"]))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text
