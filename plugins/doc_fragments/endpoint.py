# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options of every module that talks HTTP (plugins/module_utils/httpclient.py).
    DOCUMENTATION = r"""
options:
  url_username:
    description:
      - User for HTTP basic authentication, if the server asks for it.
    type: str
  url_password:
    description:
      - Password for HTTP basic authentication. Never logged nor returned.
    type: str
  validate_certs:
    description:
      - Verify the server's TLS certificate for C(https) URLs.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for one HTTP answer.
    type: float
    default: 120
"""
