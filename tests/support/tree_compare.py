"""The rebuilt root against the scanned one, for what a scan covers, independently of ferry's own code.

``covered_differences(source, target, facts)`` walks the source root (bytes names, lstat) and lists every
difference, as text, for what the scan of a prepared root (tests/support/scan_tree.py) covers:

- every entry that is no package's unchanged path, not under an excluded directory, not a device, FIFO or
  socket, and not a deleted package file: same type, mode (setuid included), owner and group ids, size and
  content, symlink target, modification time (files and the prepared root's own directories);
- paths that share an inode in the source share one in the target; the sparse file keeps its holes;
- devices, FIFOs, sockets, deleted package files and excluded files are absent from the target;
- the target holds nothing else but directories (the parents it needed) and what ``allow_extra`` names.
"""
import hashlib
import os
import stat


def _entries(root):
    """{relative bytes path: lstat} of every entry under ``root`` (the root itself left out)."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = os.lstat(path)
    return found


def _digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _under(relative, prefixes):
    return any(relative == p or relative.startswith(p + b"/") for p in prefixes)


def _not_covered(facts):
    """Paths the scan leaves to the packages (listed by one and unchanged: files, directories, the merged-/usr
    links such as ``lib -> usr/lib``), or leaves out (deleted, devices, FIFOs, sockets); and excluded trees."""
    skipped = [p for paths in facts["skipped"].values() for p in paths]
    packaged = set(facts["package_paths"]) - set(facts["modified"])
    gone = packaged | set(facts["unchanged"]) | set(facts["deleted"]) | set(skipped)
    return gone, list(facts["excluded"]) + [b"tmp", b"var/tmp", b"var/cache", b"var/lib/apt/lists", b"var/lib/dpkg"]


def _same_entry(relative, first, second, source, target, compare_time):
    problems = []
    kind = stat.S_IFMT(first.st_mode)
    if kind != stat.S_IFMT(second.st_mode):
        return ["%r: type %o, not %o" % (relative, stat.S_IFMT(second.st_mode), kind)]
    if not stat.S_ISLNK(first.st_mode) and stat.S_IMODE(first.st_mode) != stat.S_IMODE(second.st_mode):
        problems.append("%r: mode %o, not %o" % (relative, stat.S_IMODE(second.st_mode), stat.S_IMODE(first.st_mode)))
    if (first.st_uid, first.st_gid) != (second.st_uid, second.st_gid):
        problems.append("%r: owner %d:%d, not %d:%d" % (relative, second.st_uid, second.st_gid,
                                                        first.st_uid, first.st_gid))
    if stat.S_ISLNK(first.st_mode):
        there, here = os.readlink(os.path.join(source, relative)), os.readlink(os.path.join(target, relative))
        if there != here:
            problems.append("%r: link to %r, not %r" % (relative, here, there))
    elif stat.S_ISREG(first.st_mode):
        if first.st_size != second.st_size:
            problems.append("%r: %d bytes, not %d" % (relative, second.st_size, first.st_size))
        elif _digest(os.path.join(source, relative)) != _digest(os.path.join(target, relative)):
            problems.append("%r: other content" % relative)
    if compare_time and not stat.S_ISLNK(first.st_mode) and first.st_mtime_ns != second.st_mtime_ns:
        problems.append("%r: mtime %d, not %d" % (relative, second.st_mtime_ns, first.st_mtime_ns))
    return problems


def covered_differences(source, target, facts, allow_extra=()):
    source, target = os.fsencode(source), os.fsencode(target)
    gone, excluded = _not_covered(facts)
    theirs, ours = _entries(source), _entries(target)
    problems, covered = [], set()
    for relative, first in sorted(theirs.items()):
        if _under(relative, excluded) or relative in gone:
            if relative in ours and not stat.S_ISDIR(ours[relative].st_mode):
                problems.append("%r: in the target, but the scan does not cover it" % relative)
            continue
        if stat.S_ISDIR(first.st_mode) and relative not in facts["dirs"]:
            continue  # a parent directory (a package's, or the prepared root's own): made as needed
        covered.add(relative)
        if relative not in ours:
            problems.append("%r: missing from the target" % relative)
            continue
        problems += _same_entry(relative, first, ours[relative], source, target, True)
    for group in facts["hardlinks"]:
        inodes = set(ours[p].st_ino for p in group if p in ours)
        if len(inodes) != 1:
            problems.append("%r: not one inode in the target" % (group,))
    sparse = ours.get(facts["sparse"])
    if sparse is not None and sparse.st_blocks * 512 >= sparse.st_size:
        problems.append("%r: no holes in the target" % facts["sparse"])
    for relative, entry in sorted(ours.items()):
        if relative not in covered and not stat.S_ISDIR(entry.st_mode) and relative not in allow_extra:
            if relative not in theirs:
                problems.append("%r: in the target only" % relative)
    return problems
