# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_sync's rsync: the command line (no --delete unless asked, -r with --files-from, the ssh command quoted as
rsync splits it), its output read in pieces (progress, itemized changes, statistics, escaped names) and its errors
told apart (ssh's, missing and vanished files, files not copied)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shlex
import sys

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.sshcmd import ssh_argv, ssh_command
from ansible_collections.ferry.migrate.plugins.module_utils.sync import rsync
from ansible_collections.ferry.migrate.plugins.module_utils.sync.transfer import Sync


def params(**extra):
    values = dict(mode="push", src="/data/src/", dest="/data/dest", host="target1", ssh_port=None, ssh_user=None,
                  ssh_key=None, ssh_known_hosts=None, ssh_args=None, manifest=None, paths=None, sync_pass="bulk",
                  delete=False, bwlimit=0, checksum=False, exclude=[])
    values.update(extra)
    return values


def argv_of(sync, **kwargs):
    sync.rsync = "/usr/bin/rsync"
    return sync.argv(**kwargs)


def test_defaults_copy_recursively_in_archive_mode_and_delete_nothing():
    argv = argv_of(Sync(params()))
    assert argv[:4] == ["/usr/bin/rsync", "-a", "-r", "-s"]
    assert "--delete" not in argv and "--dry-run" not in argv and "--checksum" not in argv
    assert not [word for word in argv if word.startswith(("--bwlimit", "--files-from", "--from0", "--exclude"))]
    assert "--info=progress2,stats2" in argv and "--itemize-changes" in argv and "--no-human-readable" in argv
    assert argv[-3:] == ["--", "/data/src/", "target1:/data/dest/"]


def test_pull_reads_the_remote_root_and_options_reach_the_command():
    sync = Sync(params(mode="pull", host="fd00::5", delete=True, bwlimit=2048, exclude=["*.tmp", "-x y"]))
    argv = argv_of(sync)
    assert argv[-3:] == ["--", "[fd00::5]:/data/src/", "/data/dest/"]
    assert "--delete" in argv and "--bwlimit=2048" in argv
    assert argv.index("--exclude=*.tmp") < argv.index("--exclude=-x y") < argv.index("--")


def test_the_file_list_goes_with_from0_and_verification_is_a_dry_run_unlimited():
    sync = Sync(params(checksum=True, bwlimit=10))
    sync.files = type("Files", (), {"path": "/tmp/list"})()
    argv = argv_of(sync)
    assert "--from0" in argv and "--files-from=/tmp/list" in argv and "-r" in argv
    assert "--checksum" not in argv and "--bwlimit=10" in argv
    verify = argv_of(sync, verify=True)
    assert "--dry-run" in verify and "--checksum" in verify and not [w for w in verify if w.startswith("--bwlimit")]
    assert "--info=stats2" in verify
    check = argv_of(sync, dry_run=True)
    assert "--dry-run" in check and "--checksum" not in check and "--bwlimit=10" in check


def rsync_split(command):
    """rsync's split of -e: words on spaces, single and double quotes kept together (as a shell, no escapes)."""
    return shlex.split(command, posix=True)


def test_the_ssh_command_is_strict_batch_and_quoted():
    sync = Sync(params(ssh_port=2222, ssh_user="mig user", ssh_key="/keys/it's key",
                       ssh_known_hosts="/etc/ferry/known hosts", ssh_args="-o ProxyJump=bastion -v"))
    command = argv_of(sync)[argv_of(sync).index("-e") + 1]
    words = rsync_split(command)
    assert words[:5] == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]
    assert words[5:9] == ["-o", "StrictHostKeyChecking=yes", "-o", 'UserKnownHostsFile="/etc/ferry/known hosts"']
    assert words[9:17] == ["-p", "2222", "-l", "mig user", "-i", "/keys/it's key", "-o", "IdentitiesOnly=yes"]
    assert words[17:] == ["-o", "ProxyJump=bastion", "-v"]


def test_ssh_config_values_keep_percent_and_quotes():
    assert ssh_argv(known_hosts='/k/a%d"b\\c')[-1] == 'UserKnownHostsFile="/k/a%%d\\"b\\\\c"'
    # the filter's command (no strict checking) is unchanged
    assert ssh_command(22, "u", "/k", "-v") == "ssh -o BatchMode=yes -o ConnectTimeout=30 -p 22 -l u -i /k -v"
    with pytest.raises(FerryError, match="port '0' must be a number from 1 to 65535"):
        ssh_command(0)


def test_unescape_gives_back_the_bytes_of_a_name():
    assert rsync.unescape(b"a/new\\#012line\\#377") == b"a/new\nline\xff"
    assert rsync.shown(b"a/new\\#012line\\#377") == "a/new\\x0aline\\xff"
    assert rsync.unescape(b"back\\slash\\#") == b"back\\slash\\#"


OUTPUT = (b"cd+++++++++ a/\n<f+++++++++ a/bad\\#377\n"
          b"\r              1   0%    0.00kB/s    0:00:00  \r              1   0%    0.00kB/s    0:00:00 (xfr#1, "
          b"to-chk=4/7)\n<f+++++++++ a/big\n\r         100001  99%   95.37MB/s    0:00:00 (xfr#2, to-chk=3/7)\n"
          b"*deleting   a/old\\#012name\n.d..t...... a/b/\n"
          b"\r         100007 100%   95.37MB/s    0:00:00 (xfr#4, to-chk=0/7)\n\n"
          b"Number of files: 7 (reg: 4, dir: 3)\nNumber of created files: 6 (reg: 4, dir: 2)\n"
          b"Number of deleted files: 1 (reg: 1)\nNumber of regular files transferred: 4\n"
          b"Total file size: 100,007 bytes\nTotal transferred file size: 100007 bytes\n"
          b"Literal data: 100007 bytes\nsent 100371 bytes  received 100 bytes  200942.00 bytes/sec\n")


@pytest.mark.parametrize("piece", [1, 7, 64, len(OUTPUT)])
def test_output_is_parsed_whatever_the_pieces(piece):
    seen = []
    output = rsync.Output(lambda out: seen.append((out.done, out.percent, out.total_estimate())))
    for start in range(0, len(OUTPUT), piece):
        output.feed(OUTPUT[start:start + piece])
    output.close()
    assert output.stats == {"files": 7, "created": 6, "deleted": 1, "files_transferred": 4, "bytes": 100007,
                            "bytes_transferred": 100007}
    assert output.changes == 5 and output.deletions == 1
    assert output.changed == ["cd+++++++++ a/", "<f+++++++++ a/bad\\xff", "<f+++++++++ a/big",
                              "*deleting   a/old\\x0aname", ".d..t...... a/b/"]
    assert seen[0] == (1, 0, None) and seen[-1] == (100007, 100, 100007)
    assert (100001, 99, 101011) in seen


def test_an_empty_output_has_no_stats():
    output = rsync.Output().close()
    assert output.stats == {} and output.changes == 0 and output.total_estimate() is None


REACH = rsync.Reach("target1", 2222, "mig", "/keys/id", "/etc/ferry/known_hosts")

SSH_STDERR = {
    "changed": ("@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
                "Host key for [target1]:2222 has changed and you have requested strict checking.\n"
                "Host key verification failed.\nrsync: connection unexpectedly closed (0 bytes received so far) "
                "[sender]\n",
                r"host key verification failed for target1:2222 \(known_hosts /etc/ferry/known_hosts\): the host's "
                r"key differs"),
    "unknown": ("No ED25519 host key is known for [target1]:2222 and you have requested strict checking.\n"
                "Host key verification failed.\n",
                r"host key verification failed for target1:2222 \(known_hosts /etc/ferry/known_hosts\): no key"),
    "refused": ("mig@target1: Permission denied (publickey).\nrsync: connection unexpectedly closed\n",
                r"key /keys/id refused by mig@target1 \(port 2222\)"),
    "mode": ("@ WARNING: UNPROTECTED PRIVATE KEY FILE! @\nPermissions 0644 for '/keys/id' are too open.\n",
             "ssh refuses key /keys/id: others may read it"),
    "closed": ("ssh: connect to host target1 port 2222: Connection refused\n",
               "cannot reach target1:2222 over ssh: Connection refused"),
    "timeout": ("Connection timed out during banner exchange\nConnection to target1 port 2222 timed out\n",
                "cannot reach target1:2222 over ssh: .*timed out"),
    "resolve": ("ssh: Could not resolve hostname target1: Name or service not known\n",
                "cannot reach target1:2222 over ssh: Could not resolve hostname"),
    "no rsync": ("bash: line 1: rsync: command not found\nrsync: connection unexpectedly closed\n",
                 "rsync is not installed on target1"),
}


@pytest.mark.parametrize("case", sorted(SSH_STDERR))
def test_ssh_errors_are_told_apart(case):
    stderr, message = SSH_STDERR[case]
    with pytest.raises(FerryError, match=message):
        rsync.check_exit(255, rsync.Errors(stderr.encode()), REACH, True)
    with pytest.raises(FerryError, match=message):
        rsync.check_exit(12, rsync.Errors(stderr.encode()), REACH, False)


def test_the_defaults_are_named_when_no_key_or_known_hosts_is_given():
    reach = rsync.Reach("h")
    with pytest.raises(FerryError, match=r"for h:22 \(known_hosts ~/.ssh/known_hosts\)"):
        rsync.check_exit(255, rsync.Errors(b"Host key verification failed.\n"), reach, True)
    with pytest.raises(FerryError, match=r"key \(ssh's default keys\) refused by \S+@h \(port 22\)"):
        rsync.check_exit(255, rsync.Errors(b"u@h: Permission denied (publickey,password).\n"), reach, True)


MISSING = (b'rsync: [sender] link_stat "/data/src/u/gone\\#012x" failed: No such file or directory (2)\n'
           b'rsync: link_stat "/data/src/other" failed: No such file or directory (2)\n'
           b"rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394)\n")
VANISHED = (b'file has vanished: "/data/src/u/tmp\\#377"\n'
            b"rsync warning: some files vanished before they could be transferred (code 24) at main.c(1865)\n")
DENIED = b'rsync: [sender] send_files failed to open "/data/src/u/locked": Permission denied (13)\n'


def test_listed_paths_missing_on_the_sender_are_reported_not_failed():
    errors = rsync.Errors(MISSING, "/data/src/")
    assert errors.missing == ["u/gone\\x0ax", "other"] and errors.errors == [] and errors.vanished == []
    assert rsync.check_exit(23, errors, REACH, False) == []


def test_many_missing_paths_keep_a_sample_and_a_count(tmp_path):
    with open(str(tmp_path / "err"), "w+b") as handle:
        for number in range(10000):
            handle.write(b'rsync: [sender] link_stat "/r/f%d" failed: No such file or directory (2)\n' % number)
        handle.write(b"rsync error: some files/attrs were not transferred (code 23)\n")
        handle.seek(0)
        errors = rsync.Errors(handle, "/r")
    assert errors.counts["missing"] == 10000 and errors.missing[-1] == "f49" and len(errors.missing) == 50
    assert errors.text == "" and len(errors.last) == 8 and rsync.check_exit(23, errors, REACH, True) == []


def test_vanished_files_warn_in_the_bulk_pass_and_fail_the_final_one():
    errors = rsync.Errors(VANISHED + MISSING, "/data/src")
    assert errors.vanished == ["u/tmp\\xff"]
    warnings = rsync.check_exit(24, errors, REACH, True)
    assert warnings == ["1 file(s) vanished while copied (the source is in use): u/tmp\\xff"]
    with pytest.raises(FerryError, match="1 file\\(s\\) vanished during the final pass.*u/tmp"):
        rsync.check_exit(24, errors, REACH, False)


def test_files_rsync_could_not_copy_are_named():
    with pytest.raises(FerryError, match='exit 23.*1 error.*failed to open "/data/src/u/locked": Permission denied'):
        rsync.check_exit(23, rsync.Errors(DENIED + MISSING, "/data/src"), REACH, True)


def test_other_exits_show_the_end_of_stderr():
    data = b'rsync: [Receiver] mkdir "/x/y" failed: No such file or directory (2)\nrsync error: error in file IO\n'
    with pytest.raises(FerryError, match=r"rsync failed \(exit 11\): rsync: \[Receiver\] mkdir .*file IO"):
        rsync.check_exit(11, rsync.Errors(data), REACH, True)
    with pytest.raises(FerryError, match=r"rsync failed \(exit 5\): no message"):
        rsync.check_exit(5, rsync.Errors(b""), REACH, True)


def test_run_feeds_the_output_and_can_be_stopped(tmp_path):
    script = "import sys,time\nsys.stdout.write('\\r 5 50%% x\\n'); sys.stdout.flush()\nsys.stderr.write('e\\n')\n%s"
    output = rsync.Output()
    rc, errors = rsync.run([sys.executable, "-c", script % "sys.exit(3)"], output)
    assert (rc, errors.tail(), errors.text, output.done, output.percent) == (3, "e", "e\n", 5, 50)
    rc, errors = rsync.run([sys.executable, "-c", script % "time.sleep(60)"], rsync.Output(), stop=lambda: True)
    assert rc is None


def test_rsync_missing_here_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(rsync.shutil, "which", lambda name: None)
    with pytest.raises(FerryError, match="rsync is not installed on this host"):
        rsync.find_rsync()


def test_lc_all_is_c_for_rsync(monkeypatch):
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    output = rsync.Output()
    rsync.run([sys.executable, "-c", "import os; print(' %s 1%%' % len(os.environ['LC_ALL']))"], output)
    assert output.done == 1  # len("C")
    assert os.environ["LC_ALL"] == "de_DE.UTF-8"
