# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How points are sent to an /api/put endpoint (module_utils/tsdb/transfer.py put_argument_spec(), ranges in PUT_RANGES).
    DOCUMENTATION = r"""
options:
  kind:
    description:
      - The target's kind.
    type: str
    choices: [opentsdb, victoriametrics]
    default: victoriametrics
  request_size_limit:
    description:
      - Largest request body in bytes (before compression), from 1024 to 1073741824. A point larger than
        this goes alone in its request.
      - Defaults to 524288 for VictoriaMetrics and to 8192 for OpenTSDB, whose HTTP layer treats a larger
        body as a chunked request and refuses it unless C(tsd.http.request.enable_chunked) is set (then
        raise this up to C(tsd.http.request.max_chunk)).
    type: int
  points_per_request:
    description:
      - Most points in one request, from 1 to 1000000. The default is the fastest measured into VictoriaMetrics on loopback
        (see C(docs/benchmarks.md)); OpenTSDB's documentation suggests about 50 for a fragile TSD.
    type: int
    default: 2000
  connections:
    description:
      - Requests in flight at once, each on its own keep-alive connection, from 1 to 64.
    type: int
    default: 4
  compress:
    description:
      - Send gzip-compressed bodies (saves bandwidth on a slow link, costs CPU).
    type: bool
    default: false
  throttle:
    description:
      - Most points per second to send, to spare a fragile target, C(0) or more. C(0) means no limit.
    type: int
    default: 0
  batch_attempts:
    description:
      - Times a batch is tried before the run fails naming it, from 1 to 100 (requests already acknowledged
        are not sent again). Points the target rejects, and a target that never answered, fail at once.
    type: int
    default: 3
"""
