# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of the SQL modules (sql/connection.py: mysql_argument_spec(), ranges in RANGES), named
    # as community.mysql names them.
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or address of the MariaDB or MySQL server. Not used when O(login_unix_socket) is set.
      - C(localhost) is reached over TCP, as community.mysql does; give O(login_unix_socket) for the socket.
    type: str
    default: localhost
  login_port:
    description:
      - TCP port of the server, from 1 to 65535.
    type: int
    default: 3306
  login_user:
    description:
      - The account to log in as. When not set, the C(user) of O(config_file)'s C([client]) section, else the
        server's anonymous default.
    type: str
  login_password:
    description:
      - The account's password. When not set, the C(password) of O(config_file)'s C([client]) section.
      - Never logged nor returned, and never on a command line; the client programs read it from an option file
        readable by the module's user only (mode C(0600)), removed when the task ends.
    type: str
  login_unix_socket:
    description:
      - The server's Unix socket; used instead of O(login_host) and O(login_port).
    type: str
  config_file:
    description:
      - An option file (C(my.cnf) format) read for the values not given here (C(user), C(password), C(host),
        C(port), C(socket), C(ssl-ca), ...) from its C([client]) section, when it exists. The options given here
        win over it. An empty string is refused.
    type: path
    default: ~/.my.cnf
  connect_timeout:
    description:
      - Seconds to wait for the connection to the server, from 1 to 3600.
    type: int
    default: 30
  ca_cert:
    description:
      - The CA certificate (PEM) that signed the server's TLS certificate; setting it turns TLS on.
    type: path
    aliases: [ssl_ca]
  client_cert:
    description:
      - The client's TLS certificate (PEM), for servers that require one.
    type: path
    aliases: [ssl_cert]
  client_key:
    description:
      - The private key (PEM) of O(client_cert).
    type: path
    aliases: [ssl_key]
  check_hostname:
    description:
      - Whether the server's TLS certificate must name O(login_host). Not set, the driver's default.
    type: bool
requirements:
  - PyMySQL (on the host that runs the module)
"""
