# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of the MongoDB modules (mongo/connection.py: mongodb_argument_spec(), ranges in RANGES),
    # named as community.mongodb names them.
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or address of the MongoDB server. The module talks to this node only (C(directConnection)),
        also when it is a member of a replica set. Not used with O(uri).
    type: str
    default: localhost
  login_port:
    description:
      - TCP port of the server, from 1 to 65535. Not used with O(uri).
    type: int
    default: 27017
  login_user:
    description:
      - The account to log in as. When not set (and O(uri) has none), no login is made.
      - Mutually exclusive with O(uri).
    type: str
  login_password:
    description:
      - The account's password. Never logged nor returned, never in a message or a step record.
      - Mutually exclusive with O(uri).
    type: str
  login_database:
    description:
      - The database the account is defined in (the authentication source).
      - The default is C(admin), as in community.mongodb. MVI's own tool logged in against its data database,
        C(DLAAS); give C(DLAAS) when the account was made there.
    type: str
    default: admin
  auth_mechanism:
    description:
      - The authentication mechanism. Not set, the server and the driver agree on one.
    type: str
    choices: [SCRAM-SHA-256, SCRAM-SHA-1]
  uri:
    description:
      - A full connection string (C(mongodb://user:password@host:port/?authSource=admin)) instead of
        O(login_host), O(login_port), O(login_user) and O(login_password), which cannot be given with it.
      - Treated as a secret; messages and step records show it without its password.
    type: str
  ssl:
    description:
      - Connect over TLS.
    type: bool
    default: false
    aliases: [tls]
  ssl_ca_certs:
    description:
      - The CA certificates (PEM) that signed the server's certificate. Not set, the system's.
    type: path
    aliases: [tlsCAFile]
  ssl_certfile:
    description:
      - The client's certificate (PEM), for servers that require one; it may hold the private key as well.
    type: path
    aliases: [tlsCertificateKeyFile]
  ssl_keyfile:
    description:
      - The private key (PEM) of O(ssl_certfile), when it is in a file of its own. The two are joined in a
        temporary file readable by the module's user only, removed once the connection is set up.
    type: path
  ssl_pem_passphrase:
    description:
      - The passphrase of the client's private key.
    type: str
  ssl_cert_reqs:
    description:
      - Whether the server's certificate must be valid. pymongo 4 has no optional mode, so C(CERT_OPTIONAL) and
        C(CERT_NONE) both accept a certificate that cannot be verified.
    type: str
    choices: [CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE]
    default: CERT_REQUIRED
  connect_timeout:
    description:
      - Seconds to wait for the server to answer (to connect and to be selected), from 1 to 3600. A server that
        cannot be reached within it fails the task with C(cannot reach HOST:PORT within Ns).
    type: int
    default: 10
requirements:
  - pymongo 4.3 or later (on the host that runs the module)
"""
