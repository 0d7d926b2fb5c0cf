# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options of every module that talks HTTP (httpclient.http_argument_spec(), ranges in HTTP_RANGES).
    DOCUMENTATION = r"""
options:
  url_username:
    description:
      - User for HTTP basic authentication, if the server asks for it.
      - Without it, a user and password written in the URL (C(https://user:password@host)) are used.
        URLs are never shown with their credentials (messages, results and the step journal drop them).
    type: str
  url_password:
    description:
      - Password for HTTP basic authentication. Never logged nor returned.
    type: str
  validate_certs:
    description:
      - Verify the server's TLS certificate for C(https) URLs. A certificate that is not trusted fails at once.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for one HTTP answer, from 1 to 86400. Connecting (TCP and the TLS handshake) waits at
        most 10 seconds of it.
    type: float
    default: 120
  retries:
    description:
      - How many times a request is sent again after a connection error, a timeout, a 5xx or a 429 answer,
        from 0 to 20, waiting 0.5 s before the first retry and twice as long before each next one (at most
        30 s). The default waits about 15 s in all.
      - Until the server has answered once, a connection error is not retried and the task fails at once
        naming the URL (a server that is down, a wrong host or port, a refused TLS handshake); an untrusted
        certificate is never retried.
    type: int
    default: 5
"""

    # The store's further options (httpclient.store_http_argument_spec()): scan_upload, overlay_apply, scan_to_role.
    STORE = r"""
options:
  ca_path:
    description:
      - A PEM file of the CA certificates to trust for an C(https) URL (or a directory of them prepared with
        C(openssl rehash)), instead of the system's; for a store whose certificate a private CA signed.
      - A certificate that cannot be verified fails at once with C(certificate verify failed), naming the URL.
    type: path
  bearer_token:
    description:
      - A token sent in the C(Authorization) header as C(Bearer <token>) instead of basic authentication. Not
        with O(url_username). Never logged nor returned.
      - A server that refuses the credentials (HTTP 401) fails the task at once, saying so.
    type: str
"""
