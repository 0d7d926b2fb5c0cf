# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading a ``.sql`` / ``.sql.gz`` dump into MariaDB or MySQL, in bounded memory.

Two passes over the file, each one read of it:

1. :func:`scan` (the pre-scan): the file's sha256, its statements split once (:class:`~.dumpfile.Splitter`),
   the largest statement (checked against the server's ``max_allowed_packet`` before anything is sent), the
   objects the dump creates, their ``DEFINER`` accounts, the database the dump was taken from. Bound by inflating
   (the splitting runs at about 700 MB/s of a ZEP-like dump): about a fifteenth of the import's time (see
   bench/bench_sql_import.py); a resumed run reads it from beside the journal record instead.
2. :class:`Importer`: a reader thread inflates and splits the dump, rewrites what the options ask for and counts the
   rows of each ``INSERT``, while the calling thread sends statement after statement over one connection (the
   dump's session settings, ``SET FOREIGN_KEY_CHECKS=0`` and the like, hold for all of it), autocommit on as the
   client runs a dump.

A rerun after a kill or a failure must end with a clean import's content: before the first statement, every
object the dump creates (triggers, views, routines, events, tables) is dropped, then the dump runs from its start.
A dump that inserts into a table it does not create cannot be redone that way and is refused on a resumed run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import queue
import sys
import threading
import time

from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import GzipReader, HashingReader
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, readable
from ansible_collections.ferry.migrate.plugins.module_utils.sql import dumpfile
from ansible_collections.ferry.migrate.plugins.module_utils.sql.connection import error_code, error_text, pymysql

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
QUEUE_STATEMENTS = 16  # statements split ahead of the server (a few MiB with extended INSERTs)
SWITCH_INTERVAL = 0.0005  # seconds; Python's default 0.005 would keep the server waiting after every statement
CHECKPOINT_INTERVAL = 2.0  # seconds between two statement counts written to the journal while importing
ROUTINES = ("trigger", "view", "procedure", "function", "event")
STRIP = "strip"
KEEP = "keep"
# 1142/1044: no SELECT on mysql.user (or no access to the mysql database): the DEFINER check cannot be made.
NO_PRIVILEGE = (1142, 1044, 1227)


# -- reading --------------------------------------------------------------------------------------------------------
class DumpFile:
    """``with DumpFile(path) as dump``: ``dump.reader`` reads the dump's SQL (inflated when the file is gzip, told
    by its first bytes, not its name), ``dump.sha256()`` is the digest of the file's bytes read so far."""

    def __init__(self, path, prefetch=False):
        self.path = path
        self.name = os.path.basename(path)
        self.prefetch = prefetch
        self._handle = None
        self._hashing = None
        self.reader = None
        self.compressed = False

    def __enter__(self):
        try:
            self._handle = open(self.path, "rb")
        except OSError as exc:
            raise FerryError("cannot read the dump %s: %s" % (self.path, exc.strerror or exc))
        self.compressed = self._handle.read(2) == GZIP_MAGIC
        self._handle.seek(0)
        self._hashing = HashingReader(self._handle, "sha256")
        reader = GzipReader(self._hashing, self.name) if self.compressed else self._hashing
        self.reader = Prefetch(reader) if self.prefetch else reader
        return self

    def sha256(self):
        return self._hashing.hexdigest()

    @property
    def raw_bytes(self):
        return self._hashing.bytes_read

    def __exit__(self, *_exc):
        if isinstance(self.reader, Prefetch):
            self.reader.close()
        self._handle.close()
        return False


class Prefetch:
    """Reads (and inflates) the next pieces in a thread while the caller splits the last one: zlib lets other
    threads run while it inflates."""

    def __init__(self, reader, depth=4):
        self._queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(reader,), name="ferry-sql-read", daemon=True)
        self._thread.start()
        self._done = False

    def _run(self, reader):
        try:
            while not self._stop.is_set():
                data = reader.read(CHUNK)
                _put(self._queue, data, self._stop)
                if not data:
                    return
        except BaseException as exc:  # handed to the reading thread, raised there
            _put(self._queue, exc, self._stop)

    def read(self, _size=-1):
        if self._done:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        self._done = not item
        return item

    def close(self):
        self._stop.set()
        self._thread.join(5)


def _put(target, item, stop):
    while not stop.is_set():
        try:
            target.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


# -- the pre-scan ---------------------------------------------------------------------------------------------------
def scan(path):
    """What the dump holds, read once (see the module docstring): a JSON-serialisable dict."""
    objects = dict((kind, []) for kind in ("table",) + ROUTINES)
    definers = {}
    inserted = set()
    databases = []
    source = None
    views_naming = []
    largest = {"size": -1}
    with DumpFile(path, prefetch=True) as dump:
        splitter = dumpfile.Splitter(dump.reader, dump.name)
        for statement in splitter:
            sql = statement.sql
            if statement.number == 1:
                source = dumpfile.dump_database(statement.prefix)
            if len(sql) > largest["size"]:
                largest = {"size": len(sql), "number": statement.number, "offset": statement.offset,
                           "begins": statement.shown()}
            if sql[:7].upper() in (b"INSERT ", b"REPLACE"):
                found = dumpfile.insert_rows_table(sql)
                if found:
                    inserted.add(found)
                continue
            _scan_other(statement, objects, definers, databases, views_naming, source)
        sha256 = dump.sha256()
        size = dump.raw_bytes
    if not splitter.statements:  # an import that did nothing must not report success
        raise FerryError("%s holds no SQL statement (empty, or comments only): nothing to import" % dump.name)
    if databases:
        source = databases[0]
    created = set(objects["table"]) | set(objects["view"])
    return {
        "sha256": sha256,
        "size": size,
        "bytes": splitter.bytes_read,
        "statements": splitter.statements,
        "largest": largest if largest["size"] >= 0 else None,
        "objects": objects,
        "definers": definers,
        "inserted_only": sorted(inserted - created),
        "databases": databases,
        "source_database": source,
        "views_naming_source": views_naming,
    }


def _scan_other(statement, objects, definers, databases, views_naming, source):
    sql = statement.sql
    used = dumpfile.used_database(sql)
    made = None if used else dumpfile.created(sql)
    name = used or (made[1] if made and made[0] == "database" else None)
    if name is not None:
        if name not in databases:
            databases.append(name)
        if len(databases) > 1:
            raise FerryError("%s names a second database, %s (after %s): sql_import loads one database; dump each "
                             "database alone" % (statement.describe(), name, databases[0]))
        return
    if not made:
        return
    kind, name = made
    if name not in objects[kind]:
        objects[kind].append(name)
    if kind in ROUTINES:
        found = dumpfile.definer_of(sql)
        if found and found[1] is not None:
            definers.setdefault(dumpfile.account(found[1], found[2]), []).append("%s %s" % (kind, name))
        origin = source or (databases[0] if databases else None)
        if kind == "view" and origin and dumpfile.quote_name(origin).encode("utf-8", "surrogateescape") + b"." in sql:
            views_naming.append(name)


# -- checks against the server ---------------------------------------------------------------------------------------
def check_packet(conn, found, name):
    """Refuse a dump whose largest statement the server would refuse (before anything is sent)."""
    limit = int(_value(conn, "SELECT @@max_allowed_packet"))
    largest = found.get("largest")
    if largest and largest["size"] + 1 > limit:
        raise FerryError(
            "%s: statement %d (byte %d) is %d bytes, more than the server's max_allowed_packet (%d): nothing was "
            "imported; raise it on the server (SET GLOBAL max_allowed_packet=%d, or in its configuration), or dump "
            "with a smaller --net-buffer-length. The statement begins: %s" % (
                name, largest["number"], largest["offset"], largest["size"], limit,
                _round_up(largest["size"] + 1024), largest["begins"]))
    return limit


def _round_up(size):
    step = 1 << 20
    return (size + step - 1) // step * step


def check_definers(conn, found, definer):
    """Refuse ``definer: keep`` (or a given account) when the account does not exist on the server: MariaDB would
    create the triggers and views, then fail every later INSERT into their tables (error 1449). Returns
    warnings (the check could not be made)."""
    if definer == STRIP or not found["definers"]:
        return []
    wanted = found["definers"] if definer == KEEP else {dumpfile.account(*definer): ["every object"]}
    missing = []
    for text in sorted(wanted):
        user, host = _split_account(text)
        try:
            exists = _value(conn, "SELECT COUNT(*) FROM mysql.user WHERE User = %s AND Host = %s", (user, host))
        except pymysql.err.MySQLError as exc:
            if error_code(exc) in NO_PRIVILEGE:
                return ["the DEFINER accounts of the dump could not be checked (%s): if one is missing on the "
                        "server, INSERTs into the tables of its triggers fail with error 1449" % error_text(exc)]
            raise
        if not int(exists):
            missing.append("%s (%s)" % (text, ", ".join(wanted[text][:5]) + (", ..." if len(wanted[text]) > 5 else "")))
    if missing:
        raise FerryError(
            "the DEFINER account(s) %s do not exist on the server: MariaDB would accept the triggers and views and "
            "then fail every INSERT into their tables (error 1449); nothing was imported. Create the account(s), or "
            "set definer: strip (the importing account becomes the definer) or definer: <user>@<host>"
            % "; ".join(missing))
    return []


def definer_account(text):
    """``user@host`` (the ``definer`` option) as ``'user'@'host'``."""
    user, _sep, host = text.rpartition("@")
    return dumpfile.account(user.strip("`'\""), host.strip("`'\""))


def parse_definer(value):
    """The ``definer`` option: ``keep``, ``strip`` or ``user@host`` as (user, host); a clear error otherwise."""
    if value in (KEEP, STRIP):
        return value
    user, sep, host = (value or "").rpartition("@")
    user, host = user.strip("`'\""), host.strip("`'\"")
    if not sep or not user or not host:
        raise FerryError("definer=%r: give keep, strip or an account as user@host (for example zenoss@localhost)"
                         % (value,))
    return user, host


def _split_account(text):
    """``'u'@'h'`` (as :func:`dumpfile.account` writes it) back into (user, host)."""
    user, _sep, host = text.rpartition("@")
    return _unsql(user), _unsql(host)


def _unsql(text):
    return text[1:-1].replace("''", "'").replace("\\\\", "\\")


def _value(conn, sql, args=None):
    with conn.cursor() as cursor:
        cursor.execute(sql, args)
        row = cursor.fetchone()
    return row[0] if row else None


def database_exists(conn, database):
    return bool(_value(conn, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,)))


def count_rows(conn, database, tables):
    """{table: rows} counted on the server."""
    counts = {}
    for table in tables:
        counts[table] = int(_value(conn, "SELECT COUNT(*) FROM %s.%s" % (
            dumpfile.quote_name(database), dumpfile.quote_name(table))))
    return counts


def drop_objects(conn, database, found):
    """Drop what the dump creates and ``database`` holds, so that running the dump from its start gives a clean
    import's content whatever an earlier run left; returns how many objects were dropped."""
    quoted = dumpfile.quote_name(database)
    names = set(found["objects"]["table"]) | set(found["objects"]["view"])
    existing = _rows(conn, "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                     database)
    drops = []
    for kind, query in _EXISTING:
        present = set(name for (name,) in _rows(conn, query, database))
        drops += [(kind, name) for name in found["objects"][kind.lower()] if name in present]
    drops += [("VIEW" if kind == "VIEW" else "TABLE", name) for name, kind in sorted(existing) if name in names]
    with conn.cursor() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS=0")
        for kind, name in drops:
            cursor.execute("DROP %s IF EXISTS %s.%s" % (kind, quoted, dumpfile.quote_name(name)))
        cursor.execute("SET FOREIGN_KEY_CHECKS=1")
    return len(drops)


_EXISTING = (
    ("TRIGGER", "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s"),
    ("EVENT", "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s"),
    ("PROCEDURE", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s"
                  " AND ROUTINE_TYPE = 'PROCEDURE'"),
    ("FUNCTION", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s"
                 " AND ROUTINE_TYPE = 'FUNCTION'"),
)


def _rows(conn, sql, *args):
    with conn.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


# -- the import -----------------------------------------------------------------------------------------------------
class Importer:
    """Sends the statements of ``path`` into ``database`` over ``conn``, rewriting as ``definer`` (keep, strip or
    (user, host)) says and naming ``database`` where a view names ``source`` (the dump's database).

    ``progress(bytes_done, statements_done)`` is called after each statement; ``check_stop(text)`` between them.
    After :meth:`run`: ``statements``, ``bytes`` (of SQL), ``tables`` ({table: rows inserted})."""

    def __init__(self, path, database, definer=STRIP, source=None, progress=None, check_stop=None):
        self.path = path
        self.database = database
        self.definer = definer
        self.source = source if source and source != database else None
        self.progress = progress
        self.check_stop = check_stop
        self.statements = 0
        self.sent = 0
        self.bytes = 0
        self.tables = {}
        self.views = set()

    def run(self, conn):
        interval = sys.getswitchinterval()
        # the sending thread gets the GIL back soon after the server answers, the splitting thread being busy
        sys.setswitchinterval(SWITCH_INTERVAL)
        with DumpFile(self.path, prefetch=True) as dump:
            feed = _Feed(self._prepared(dump), QUEUE_STATEMENTS)
            try:
                self._send_all(conn, feed, dump.name)
            finally:
                feed.close()
                sys.setswitchinterval(interval)
        for name in self.views:  # the stand-in table an older mysqldump writes first for each view
            self.tables.pop(name, None)
        return self

    def _send_all(self, conn, feed, name):
        last_stop = 0.0
        for statement, sql in feed:
            self.statements = statement.number
            if sql is not None:
                try:
                    conn.query(sql)
                except pymysql.err.MySQLError as exc:
                    raise FerryError(self._failure(statement, name, exc))
                self.sent += 1
            done = statement.offset + len(statement.sql) + len(statement.suffix)
            self.bytes = done
            if self.progress is not None:
                self.progress(done, self.statements)
            now = time.time()
            if self.check_stop is not None and now - last_stop >= 1.0:
                last_stop = now
                self.check_stop("%d statement(s)" % self.statements)

    def _failure(self, statement, name, exc):
        hint = ""
        if error_code(exc) in (2006, 2013, 1153):
            hint = " (the server closed the connection: a statement over its max_allowed_packet, or a restart)"
        elif error_code(exc) == 1449:
            hint = " (a DEFINER account is missing: create it, or run with definer: strip)"
        return "%s: %s failed: %s%s; nothing after it was imported. The statement begins: %s" % (
            name, statement.describe(), readable(error_text(exc)), hint, statement.shown())

    def _prepared(self, dump):
        """(statement, bytes to send or None) in order, rows counted: runs in the reading thread."""
        for statement in dumpfile.Splitter(dump.reader, dump.name):
            sql = statement.sql
            head = sql[:7].upper()
            if head in (b"INSERT ", b"REPLACE"):
                found = dumpfile.insert_rows(sql)
                if found:
                    self.tables[found[0]] = self.tables.get(found[0], 0) + found[1]
                yield statement, sql
                continue
            yield statement, self._rewrite(sql)

    def _rewrite(self, sql):
        if dumpfile.used_database(sql) is not None:
            return None  # the connection is in the target database already
        made = dumpfile.created(sql)
        if made is None:
            return sql
        if made[0] == "database":
            return None
        if made[0] == "table":
            self.tables.setdefault(made[1], 0)
            return sql
        if made[0] == "view":
            self.views.add(made[1])
        if self.definer != KEEP:
            sql = dumpfile.rewrite_definer(sql, None if self.definer == STRIP else self.definer)
        if self.source:
            sql = dumpfile.rename_database(sql, self.source, self.database)
        return sql


class _Feed:
    """Runs a generator in a thread, ``depth`` items ahead of the consumer; its error is raised in the consumer."""

    _END = object()

    def __init__(self, items, depth):
        self._queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), name="ferry-sql-split", daemon=True)
        self._thread.start()

    def _run(self, items):
        try:
            for item in items:
                if not _put(self._queue, item, self._stop):
                    return
            _put(self._queue, self._END, self._stop)
        except BaseException as exc:  # raised in the consumer
            _put(self._queue, exc, self._stop)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self):
        self._stop.set()
        self._thread.join(5)
