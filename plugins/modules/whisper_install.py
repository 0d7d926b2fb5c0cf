#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: whisper_install
short_description: Install whisper files converted elsewhere into Carbon's storage, filling existing ones exactly
version_added: 0.1.0
description:
  - Places every whisper file under O(src) (for example files M(ferry.migrate.rrd_to_whisper) converted on
    another host) at the same relative path under O(dest), Carbon's storage.
  - A file missing in O(dest) is copied under a temporary name, made durable with the rest of its group by one
    file-system sync, then linked into place, so Carbon never sees a partial file and a file Carbon created
    in the meantime is never replaced.
  - A file already in O(dest) (Carbon writes it, or an earlier install) is never overwritten. Under Carbon's
    lock, each of its archives takes the points of the O(src) archive with the same resolution, only into its
    empty slots; an archive with no such twin takes, as Carbon would, the next finer O(src) archive dividing
    it, aggregated with the file's own method and xFilesFactor. Unlike C(whisper-fill), which writes through
    C(whisper.update_many), nothing already in the file is aggregated again or changed.
  - Every step is safe to repeat; a second run finds nothing to do and reports no change, a killed run is
    simply run again. Files received since the last complete install are the only ones read again (see
    O(reread)), so a role run again with nothing new received is quick. A damaged file fails alone, named with the reason; the task fails at the end when more
    than O(max_failed_files) failed.
  - Nothing is read or written through a symlink leading out of O(src) or O(dest); such a file fails alone, and
    a temporary name found in O(dest) (a killed run's, or a symlink planted there) is replaced, never written
    through.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  src:
    description: Directory of the whisper files to install; directories named C(.ferry-*) are left out.
    type: path
    required: true
  dest:
    description: Carbon's storage directory (C(LOCAL_DATA_DIR), for example C(/var/lib/graphite/whisper)).
    type: path
    required: true
  owner:
    description: Owner (name or uid) of the files and directories created; by default the user running the module.
    type: str
  group:
    description: Group (name or gid) of the files and directories created.
    type: str
  mode:
    description:
      - Permissions of the files created, read as Ansible's file modules read C(mode). An integer is taken as it
        is (an unquoted C(0644) is the YAML integer 420, that is C(0o644)); a string is octal (C("0644"),
        C("644")) or symbolic (C("u=rw,g=r,o=r"), applied to no permissions since the files are new). From
        C(0) to C(0o7777). Directories get the matching execute bits.
    type: raw
    default: "0644"
  max_failed_files:
    description:
      - How many files may fail before the task fails, C(0) or more (all of them are listed in RV(failed_files)).
    type: int
    default: 0
  record_dir:
    description:
      - The migration's state directory. When set, the install is recorded there as step O(step) (running with
        the files done so far, then complete or failed with its counts), which
        M(ferry.migrate.migration_status) shows. The install always runs; a complete record is no reason to
        skip it, files received since are (see O(reread)).
      - C(state_dir), its former name, is an alias. Unlike the steps'
        O(ferry.migrate.rrd_to_whisper#module:state_dir) it has no default (nothing is recorded) and never makes
        the install skip. Through the alias, C(module_defaults) for C(group/ferry.migrate.all) setting
        C(state_dir) record the install in the migration's state directory; they then win over O(record_dir)
        given on the task (Ansible takes the alias, with a warning), so give C(state_dir) on the task to record
        the install elsewhere.
    type: path
    aliases: [state_dir]
  step:
    description: The name of the step recorded in O(record_dir).
    type: str
    default: whisper_install
  reread:
    description:
      - Read every file of O(src) again. Otherwise a file that arrived before the last install that ended
        without failure, and is in O(dest), is not read again (it was filled then); C(src/.ferry-installed)
        marks when that install started.
      - C(force), its former name, is an alias. Unlike the steps' O(ferry.migrate.rrd_to_whisper#module:force) it
        does not make a complete step run again (the install always runs); it makes the install read every file.
    type: bool
    default: false
    aliases: [force]
attributes:
  check_mode:
    support: full
    details: Reports which files would be created and how many points would be filled, reading only.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Install the whisper files converted on the NAV 3 host
  ferry.migrate.whisper_install:
    src: /var/tmp/ferry/received/whisper
    dest: /var/lib/graphite/whisper
    owner: _graphite
    group: _graphite
"""

RETURN = r"""
counts:
  description:
    - C(files) looked at, C(created) in O(dest), C(merged) (existing files that received points), C(up_to_date)
      (existing files lacking nothing), C(already_installed) (filled by an earlier install, not read again),
      C(points) filled into existing files and C(failed) files.
  returned: always
  type: dict
  sample: {"files": 1362, "created": 1200, "merged": 150, "up_to_date": 12, "already_installed": 0, "points": 482113,
           "failed": 0}
failed_files:
  description:
    - The first 50 files that failed, each with its reason; bytes of a file name that are not UTF-8 show as
      C(\xff), control characters as C(\x0a).
  returned: always
  type: list
  elements: str
"""

import functools
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    SAMPLE_LIMIT,
    FerryError,
    check_paths,
    check_ranges,
    exit_with,
    readable,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import parse_mode, resolve_owner
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.whisper import install_tree


def run(params, check_mode):
    check_paths(params, ("src", "dest", "record_dir"))
    check_ranges(params, {"max_failed_files": (0, None)})
    mode = parse_mode(params["mode"])
    if not os.path.isdir(params["src"]):
        raise FerryError("%s is not a directory" % params["src"])
    install = functools.partial(install_tree, params["src"], params["dest"],
                                resolve_owner(params["owner"], params["group"]), mode, mode | (mode & 0o444) >> 2,
                                dry_run=check_mode, everything=params["reread"])
    if not params["record_dir"] or check_mode:
        return _result(params, *install())
    # recorded, never skipped: files received since the last install are what it looks for
    attempt = Journal(params["record_dir"]).step(params["step"]).attempt(
        [os.path.abspath(params["src"]), os.path.abspath(params["dest"])], force=True)
    with attempt.running(unit="files") as step:
        result = _result(params, *install(progress=step.progress))
        if result.get("msg"):
            step.fail(result["msg"], result["counts"])
        else:
            step.complete(result["counts"])
    return result


def _result(params, counts, failures):
    failures = [readable(text) for text in failures[:SAMPLE_LIMIT]]  # a file name need not be UTF-8
    result = {"changed": counts["created"] + counts["points"] > 0, "counts": counts,
              "failed_files": failures}
    allowed = params["max_failed_files"]
    if counts["failed"] > allowed:
        result["msg"] = "%s of %s whisper files failed to install (more than max_failed_files=%s), the first: %s" % (
            counts["failed"], counts["files"], allowed, failures[0])
    return result


def argument_spec():
    return dict(
        src=dict(type="path", required=True),
        dest=dict(type="path", required=True),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw", default="0644"),
        max_failed_files=dict(type="int", default=0),
        reread=dict(type="bool", default=False, aliases=["force"]),
        record_dir=dict(type="path", aliases=["state_dir"]),
        step=dict(type="str", default="whisper_install"),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_with(module, lambda: run(module.params, module.check_mode))


if __name__ == "__main__":
    main()
