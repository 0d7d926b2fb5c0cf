# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options of the RRD converters (module_utils/rrd/steps.py rrd_argument_spec()).
    DOCUMENTATION = r"""
options:
  src:
    description:
      - Directory holding the RRD files, walked recursively in sorted order. Files ending in C(.rrd) are read
        with the rrdtool binding (same CPU architecture only); files ending in C(.rrd.xml) or C(.rrd.xml.gz)
        are C(rrdtool dump) output, readable on any architecture (values then carry the 11 significant
        digits C(rrdtool dump) prints). An empty string is refused.
    type: path
    required: true
  files:
    description:
      - Convert only these files (relative to O(src), or absolute inside it) instead of the whole tree.
    type: list
    elements: path
  counters:
    description:
      - C(rebuild) turns the rates RRD stores for DERIVE, COUNTER and ABSOLUTE data sources back into one
        continuous counter (each interval adds rate times the archive's step; an unknown interval adds
        nothing). C(rate) keeps the rates. MIN, MAX and LAST archives always keep rates.
    type: str
    choices: [rebuild, rate]
    default: rebuild
  workers:
    description:
      - Worker processes, from C(0) to C(1024). C(0) means one per CPU core available to the task.
    type: int
    default: 0
  shard_index:
    description:
      - This host's share of the tree when O(shard_count) hosts split it, from C(0) to O(shard_count) minus one.
        A file belongs to the shard given by a stable hash of its relative path (its bytes, whatever their
        encoding), so every host computes the same split.
    type: int
    default: 0
  shard_count:
    description:
      - Hosts splitting the tree, C(1) or more.
    type: int
    default: 1
  max_failed_files:
    description:
      - Files that may fail (corrupt, truncated, unreadable, impossible times, names that cannot be converted)
        before the task fails, C(0) or more. Failed files are listed in the result and retried by the next run
        of the step.
    type: int
    default: 0
  min_free_mb:
    description:
      - MiB that must stay free on the file system of O(dest), C(0) or more (C(0) only checks that each file
        fits). Checked when the run starts and before each whisper file or frame of points is written; the run
        then fails naming O(dest) and the numbers, leaving no partial file (files finished before stay, a later
        run resumes).
    type: int
    default: 512
"""
