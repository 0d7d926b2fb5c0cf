# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL dump files: the one statement splitter, and what a statement is (an insert's table and rows, an object a
``CREATE`` makes, its ``DEFINER``).

:class:`Splitter` reads a dump forward as bytes, in bounded memory (a statement, plus one read), and yields its
statements the way the ``mysql`` / ``mariadb`` client cuts them: quoted strings (``'...'``, ``"..."`` with
backslash escapes and doubled quotes), backquoted names, ``-- `` and ``#`` comments to the end of the line, ``/* */``
comments, ``/*! */`` and ``/*M! */`` conditional comments (code: the server runs them), and the client-side
``DELIMITER`` command (triggers and routines). Bytes are never decoded: a dump without ``--hex-blob`` holds binary
strings and text in any character set, sent on exactly as read.

Each :class:`Statement` keeps the text before it (whitespace, comments, ``DELIMITER`` lines) and after it (the
delimiter), so writing ``prefix + sql + suffix`` of every statement and then :attr:`Splitter.tail` gives the
input back byte for byte (what ``sql_dump`` does while it rewrites ``DEFINER`` clauses).

Not handled, as the client's defaults do not either: ``ANSI_QUOTES`` and ``NO_BACKSLASH_ESCAPES`` (``mysqldump``
never writes with them) and client commands other than ``DELIMITER`` (``\\g``, ``source``...).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, readable

CHUNK = 1 << 20
SHOWN = 200  # characters of a statement shown in a message
# Bytes one regular expression call looks at: it holds the GIL throughout, and the thread sending statements must
# not wait long for it (a quoted string cut there goes the slow way, to the same result).
SLICE = 1 << 16
_WS = b" \t\r\n\f\v"
_WS_RUN = re.compile(b"[ \t\r\n\f\v]*")
_DELIMITER_CMD = re.compile(b"(?i)delimiter[ \t]")
_DELIMITER_ARG = re.compile(b"(?i)delimiter[ \t]+([^ \t\r\n]+)")


def _possessive():
    """``+``: possessive quantifiers (Python 3.11 and later) spare the regular expression engine its backtracking
    marks, a third faster on a dump's rows; nothing on an older Python (same matches, slower)."""
    try:
        re.compile("a*+")
        return b"+"
    except re.error:  # pragma: no cover
        return b""


_P = _possessive()


def _string(quote):
    """A whole string quoted by ``quote``, found quickly: a quote's escape is told by the backslashes just before it
    (an odd run escapes it), looked at behind it, so the engine runs through the text one byte class at a time (a
    class of one byte is several times faster than ``[^'\\\\]``, and JSON columns hold many escapes). Runs of up to 3
    are told; a quote after 4 or more makes it fail (the exact patterns below take those)."""
    other = b"[^" + quote + b"]*" + _P
    before = b"[^\\\\]"
    return (quote + other + b"(?:(?<=" + before + b"\\\\)" + quote + other + b"|(?<=" + before + b"\\\\" * 3 + b")"
            + quote + other + b")*" + _P + b"(?:(?<=" + before + b")|(?<=" + before + b"\\\\" * 2 + b"))" + quote)


# Exact, slower (a step per escape): what the quick patterns leave.
_SQ_WHOLE = b"'[^'\\\\]*P(?:(?:\\\\[\\s\\S]|'')[^'\\\\]*P)*P'".replace(b"P", _P)
_DQ_WHOLE = b'"[^"\\\\]*P(?:(?:\\\\[\\s\\S]|"")[^"\\\\]*P)*P"'.replace(b"P", _P)
# A closing quote must be followed by a byte that is not a quote, so that a quote at the end of what was read
# (maybe the first of a doubled one) is looked at again with more data.
_SQUOTED = _string(b"'") + b"(?=[^'])"
_DQUOTED = _string(b'"') + b'(?=[^"])'
_BQUOTED = b"`[^`]*P(?:``[^`]*P)*P`(?=[^`])".replace(b"P", _P)
# The inside of a quoted string up to its closing quote, a backslash at the end of the data, or the end of it.
_INSIDE = {
    ord("'"): re.compile(b"[^'\\\\]*(?:\\\\[\\s\\S][^'\\\\]*)*"),
    ord('"'): re.compile(b'[^"\\\\]*(?:\\\\[\\s\\S][^"\\\\]*)*'),
    ord("`"): re.compile(b"[^`]*"),
}
_QUOTES = frozenset(_INSIDE)
_SPECIAL = b"'\"`#/-"
# MariaDB's dump tools (10.5.25 and later) start with this client command; the client reads it, the server never
# sees it.
_SANDBOX = b"/*M!999999\\- enable the sandbox mode */"
_FAST = {}  # delimiter -> compiled run of plain bytes and whole quoted strings


def _fast(delimiter):
    """The regular expression that skips what cannot end a statement: plain bytes, whole quoted strings, a ``-``
    or ``/`` that starts no comment. It stops at a quote it cannot close, a comment, the delimiter's first byte."""
    pattern = _FAST.get(delimiter)
    if pattern is None:
        first = delimiter[:1]
        special = set(_SPECIAL + first)
        plain = b"[^" + b"".join(re.escape(bytes([byte])) for byte in sorted(special)) + b"]+" + _P
        parts = [plain, _SQUOTED, _DQUOTED, _BQUOTED]
        if first != b"-":
            parts.append(b"-(?=[^-])")
        if first != b"/":
            parts.append(b"/(?=[^*])")
        pattern = _FAST[delimiter] = re.compile(b"(?:" + b"|".join(parts) + b")*" + _P)
    return pattern


class Statement:
    """One statement: ``number`` (1-based), ``offset`` (of its first byte in the uncompressed dump), ``sql`` (its
    bytes, without the delimiter and the whitespace around), ``prefix`` and ``suffix`` (the text around it)."""

    __slots__ = ("number", "offset", "sql", "prefix", "suffix")

    def __init__(self, number, offset, sql, prefix, suffix):
        self.number = number
        self.offset = offset
        self.sql = sql
        self.prefix = prefix
        self.suffix = suffix

    def shown(self):
        """Its first 200 characters for a message (bytes that are not UTF-8 as ``\\xff``)."""
        return shown(self.sql)

    def describe(self):
        return "statement %d (byte %d)" % (self.number, self.offset)


def shown(sql):
    text = readable(bytes(sql[:SHOWN * 4]).decode("utf-8", "surrogateescape"))
    return text[:SHOWN] + ("..." if len(text) > SHOWN or len(sql) > SHOWN * 4 else "")


class Splitter:
    """The statements of a dump read from ``reader`` (an object with ``read(size)`` returning bytes), in order.

    ``name`` names the dump in messages. After the iteration: ``statements`` (how many), ``largest`` (the size of
    the largest statement), ``bytes_read`` and ``tail`` (text after the last statement: comments, whitespace).
    """

    def __init__(self, reader, name, chunk=CHUNK):
        if chunk < 1:
            raise ValueError("chunk must be positive")
        self.reader = reader
        self.name = name
        self.chunk = chunk
        self.delimiter = b";"
        self.statements = 0
        self.largest = 0
        self.bytes_read = 0
        self.tail = b""
        self._buf = bytearray()
        self._base = 0  # offset in the dump of _buf[0]
        self._eof = False

    # -- reading ------------------------------------------------------------------------------------------------
    def _fill(self, keep):
        """Drop what comes before ``keep``, read one more piece; returns how far the indexes moved (0 at the end)."""
        if self._eof:
            return None
        if keep:
            del self._buf[:keep]
            self._base += keep
        data = self.reader.read(self.chunk)
        if data:
            self._buf += data
            self.bytes_read += len(data)
        else:
            self._eof = True
        return keep

    def __iter__(self):
        pos = 0
        while True:
            start, pos = self._skip(pos)
            if pos is None:  # the end of the dump: what is left is text around no statement
                self.tail = bytes(self._buf[start:])
                return
            found = self._statement_end(start, pos)
            start, body, end, after = found
            buf = self._buf
            while end > body and buf[end - 1] in _WS:
                end -= 1
            self.statements += 1
            size = end - body
            if size > self.largest:
                self.largest = size
            yield Statement(self.statements, self._base + body, bytes(buf[body:end]), bytes(buf[start:body]),
                            bytes(buf[end:after]))
            pos = after

    # -- between statements ---------------------------------------------------------------------------------------
    def _skip(self, start):
        """Skip whitespace, comments, empty statements and ``DELIMITER`` commands from ``start``: (start, position of
        the statement's first byte), ``start`` moved with the buffer; (start, None) at the end of the dump."""
        pos = start
        while True:
            buf = self._buf
            pos = _WS_RUN.match(buf, pos).end()
            left = len(buf) - pos
            if left < 48 and not self._eof:  # enough to recognise what comes (DELIMITER, a comment, the sandbox)
                shift = self._fill(start)
                start, pos = start - shift, pos - shift
                continue
            if not left:
                return start, None
            if _line_comment(buf, pos):
                start, pos = self._find(b"\n", pos, start)
                continue
            if (buf.startswith(b"/*", pos) and not _conditional(buf, pos)) or buf.startswith(_SANDBOX, pos):
                start, pos = self._find(b"*/", pos + 2, start, what="comment")
                continue
            if buf.startswith(self.delimiter, pos):
                pos += len(self.delimiter)
                continue
            if _DELIMITER_CMD.match(buf, pos):
                start, pos = self._delimiter_command(start, pos)
                continue
            return start, pos

    def _find(self, needle, pos, keep, what=None):
        """(keep, index after ``needle``) from ``pos``, reading on as needed (``keep`` moved with the buffer); the
        end of the dump ends a line comment, and is an error in a ``what`` (a block comment)."""
        while True:
            index = self._buf.find(needle, pos)
            if index >= 0:
                return keep, index + len(needle)
            pos = max(pos, len(self._buf) - len(needle) + 1)  # what was searched is not searched again
            shift = self._fill(keep)
            if shift is None:
                if what:
                    raise FerryError("%s: the dump ends inside a %s (byte %d)" % (self.name, what, self._base + pos))
                return keep, len(self._buf)
            keep, pos = keep - shift, pos - shift

    def _delimiter_command(self, start, pos):
        moved, after = self._find(b"\n", pos, start)
        pos -= start - moved
        line = bytes(self._buf[pos:after])
        start = moved
        match = _DELIMITER_ARG.search(line)
        if not match:
            raise FerryError("%s: a DELIMITER command without a delimiter at byte %d" % (self.name, self._base + pos))
        delimiter = match.group(1)
        if delimiter[:1] in (b"'", b'"', b"`", b"#") or delimiter.startswith((b"--", b"/*")):
            raise FerryError("%s: unsupported delimiter %r at byte %d" % (
                self.name, readable(delimiter.decode("utf-8", "surrogateescape")), self._base + pos))
        self.delimiter = delimiter
        return start, after

    # -- inside a statement ---------------------------------------------------------------------------------------
    def _statement_end(self, start, body):
        """(start, body, end, after): the statement from ``body`` ends at ``end``, where its delimiter begins;
        ``after`` follows the delimiter. Indexes are into the buffer as it is when this returns."""
        delimiter = self.delimiter
        fast = _fast(delimiter).match
        first = delimiter[0]
        size = len(delimiter)
        pos = body
        while True:
            buf = self._buf
            pos = fast(buf, pos, min(len(buf), pos + SLICE)).end()
            if len(buf) - pos < 3 and not self._eof:  # a token may go on in the next piece
                shift = self._fill(start)
                start, body, pos = start - shift, body - shift, pos - shift
                continue
            if pos >= len(buf):  # the last statement, without a delimiter: the client runs it too
                return start, body, len(buf), len(buf)
            byte = buf[pos]
            if byte == first and buf.startswith(delimiter, pos):
                return start, body, pos, pos + size
            if byte in _QUOTES:
                start, body, pos = self._quoted(start, body, pos)
            elif _line_comment(buf, pos):  # comments inside a statement stay in it: the server skips them
                moved, pos = self._find(b"\n", pos, start)
                start, body = moved, body - (start - moved)
            elif buf.startswith(b"/*", pos) and not _conditional(buf, pos):
                moved, pos = self._find(b"*/", pos + 2, start, what="comment")
                start, body = moved, body - (start - moved)
            elif byte == first and len(buf) - pos < size and not self._eof:
                shift = self._fill(start)
                start, body, pos = start - shift, body - shift, pos - shift
            else:
                pos += 1  # a byte the fast path stops at without cause: '-', '/', the delimiter's first byte

    def _quoted(self, start, body, pos):
        """Skip the quoted string or name at ``pos`` (longer than what is read): (start, body, position after)."""
        quote = self._buf[pos]
        inside = _INSIDE[quote].match
        opened = self._base + pos
        pos += 1
        while True:
            buf = self._buf
            pos = inside(buf, pos).end()
            if pos + 1 < len(buf):  # stopped at a quote (a backslash stops it only as the last byte read)
                if buf[pos + 1] == quote:  # a doubled quote: part of the string
                    pos += 2
                    continue
                return start, body, pos + 1
            if pos + 1 == len(buf) and self._eof and buf[pos] == quote:
                return start, body, pos + 1
            shift = self._fill(start)
            if shift is None:
                raise FerryError("%s: the dump ends inside a quoted string or name that starts at byte %d "
                                 "(statement %d): it is truncated" % (self.name, opened, self.statements + 1))
            start, body, pos = start - shift, body - shift, pos - shift


def _line_comment(buf, pos):
    """Whether a ``#`` or ``-- `` comment (two dashes and a space or control byte, or the end) starts at ``pos``."""
    byte = buf[pos]
    if byte == 35:
        return True
    return byte == 45 and buf.startswith(b"--", pos) and (pos + 2 >= len(buf) or buf[pos + 2] <= 32)


def _conditional(buf, pos):
    """Whether the ``/*`` at ``pos`` opens a conditional comment (``/*!``, ``/*M!``): code for the server."""
    return buf.startswith(b"/*!", pos) or buf.startswith(b"/*M!", pos)


# -- what a statement is ---------------------------------------------------------------------------------------------
_NAME = b"(?:`(?:[^`]|``)*`|[A-Za-z0-9_$\\x80-\\xff]+)"
_USER_PART = b"(?:`(?:[^`]|``)*`|'(?:[^'\\\\]|\\\\.|'')*'|\"(?:[^\"\\\\]|\\\\.)*\"|[A-Za-z0-9_$.%\\x80-\\xff-]+)"
_DEFINER = re.compile(b"(?i)DEFINER\\s*=\\s*(?:CURRENT_USER(?:\\s*\\(\\s*\\))?|(" + _USER_PART + b")(?:\\s*@\\s*("
                      + _USER_PART + b"))?)")
_MARKERS = re.compile(b"/\\*M?!\\d*|\\*/")
_CREATE = re.compile(
    b"(?is)\\s*CREATE\\s+(?:OR\\s+REPLACE\\s+)?(?:ALGORITHM\\s*=\\s*\\w+\\s+)?"
    b"(?:DEFINER\\s*=\\s*(?:CURRENT_USER(?:\\s*\\(\\s*\\))?|" + _USER_PART + b"(?:\\s*@\\s*" + _USER_PART + b")?)\\s*)?"
    b"(?:SQL\\s+SECURITY\\s+\\w+\\s+)?(?:AGGREGATE\\s+)?"
    b"(TABLE|VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|DATABASE|SCHEMA)\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?"
    b"(" + _NAME + b"(?:\\s*\\.\\s*" + _NAME + b")?)")
_INSERT = re.compile(b"(?is)(?:INSERT|REPLACE)\\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\\s+)*"
                     b"(?:INTO\\s+)?(" + _NAME + b"(?:\\s*\\.\\s*" + _NAME + b")?)"
                     b"\\s*(?:\\([^)]*\\)\\s*)?VALUES?\\s*\\(")
_USE = re.compile(b"(?is)\\s*USE\\s+(" + _NAME + b")\\s*$")
_STRINGS = re.compile(b"|".join((_string(b"'"), _string(b'"'), _SQ_WHOLE, _DQ_WHOLE)))
_ROW_SEP = re.compile(b"\\)\\s*,\\s*\\(")
HEAD = 2048  # bytes of a statement looked at to say what it creates


def unquote(name):
    """An identifier's text: ``\\`a``b\\``` -> ``a`b``; a qualified ``db.t`` keeps its last part."""
    parts = re.findall(_NAME, name)
    last = parts[-1] if parts else name
    if last.startswith(b"`"):
        last = last[1:-1].replace(b"``", b"`")
    return last.decode("utf-8", "surrogateescape")


def quote_name(text):
    return "`%s`" % text.replace("`", "``")


def head_text(sql):
    """The start of a statement without its conditional comment markers: ``/*!50003 CREATE*/ /*!50017 ...`` reads
    ``CREATE ...``."""
    return _MARKERS.sub(b" ", sql[:HEAD])


def created(sql):
    """(kind, name) of what a ``CREATE`` makes (kind lower case: table, view, trigger, procedure, function, event,
    database), or None."""
    if b"CREATE" not in sql[:HEAD].upper():
        return None
    match = _CREATE.match(head_text(sql))
    if not match:
        return None
    kind = match.group(1).decode("ascii").lower()
    return ("database" if kind == "schema" else kind), unquote(match.group(2))


def used_database(sql):
    """The database a ``USE`` statement switches to, or None."""
    match = _USE.match(head_text(sql)) if sql[:4].upper().startswith(b"USE") or b"USE" in sql[:64].upper() else None
    return unquote(match.group(1)) if match else None


def insert_rows_table(sql):
    """The table an ``INSERT`` / ``REPLACE`` with ``VALUES`` fills, or None (rows not counted: cheap)."""
    match = _INSERT.match(sql)
    return unquote(match.group(1)) if match else None


def insert_rows(sql):
    """(table, rows) of an ``INSERT`` / ``REPLACE`` with ``VALUES``, or None: rows are the ``(...)`` groups, counted
    outside quoted strings."""
    match = _INSERT.match(sql)
    if not match:
        return None
    rows = len(_ROW_SEP.findall(_STRINGS.sub(b"''", sql[match.end() - 1:]))) + 1
    return unquote(match.group(1)), rows


def definer_of(sql):
    """(match, user, host) of the ``DEFINER=`` clause of a ``CREATE`` statement, or None (none, or
    ``CURRENT_USER``). Only a clause before the object's kind counts: a routine's body may hold the word."""
    kind = created(sql)
    if kind is None or kind[0] in ("table", "database"):
        return None
    head = sql[:HEAD]
    match = _DEFINER.search(head)
    keyword = re.search(b"(?i)\\b(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT)\\b", head)
    if not match or (keyword and keyword.start() < match.start()):
        return None
    if match.group(1) is None:
        return match, None, None
    return match, _unquote_user(match.group(1)), _unquote_user(match.group(2) or b"%")


def _unquote_user(part):
    if part[:1] in (b"`", b"'", b'"'):
        quote = part[:1]
        inner = part[1:-1].replace(quote + quote, quote)
        if quote != b"`":
            inner = re.sub(b"\\\\(.)", b"\\1", inner)
        part = inner
    return part.decode("utf-8", "surrogateescape")


def account(user, host):
    """``'user'@'host'`` as SQL writes an account."""
    return "%s@%s" % (_sql_string(user), _sql_string(host))


def _sql_string(text):
    return "'%s'" % text.replace("\\", "\\\\").replace("'", "''")


def rewrite_definer(sql, definer):
    """``sql`` with its ``DEFINER`` clause removed (``definer`` None) or replaced by ``(user, host)``; unchanged
    when it has none."""
    found = definer_of(sql)
    if found is None or found[1] is None:
        return sql
    match = found[0]
    if definer is None:
        replacement = b""
    else:
        replacement = ("DEFINER=%s" % account(*definer)).encode("utf-8", "surrogateescape")
    return sql[:match.start()] + replacement + sql[match.end():]


def rename_database(sql, source, target):
    """``sql`` with every backquoted name ``source`` that qualifies another (```source`.``) named ``target``
    instead: a view whose definition names the database it was dumped from. Quoted strings are left alone."""
    old = quote_name(source).encode("utf-8", "surrogateescape")
    if old not in sql:
        return sql
    new = quote_name(target).encode("utf-8", "surrogateescape")
    pattern = re.compile(_STRINGS.pattern + b"|(" + re.escape(old) + b")(?=\\s*\\.)")
    return pattern.sub(lambda match: new if match.group(1) else match.group(0), sql)


def dump_database(text):
    """The database named in a ``mysqldump`` header line (``-- Host: x    Database: zenoss_zep``), or None."""
    match = re.search(b"--[^\\n]*\\bDatabase: ([^\\r\\n]+?)\\s*(?:\\n|$)", text[:4096])
    return match.group(1).decode("utf-8", "surrogateescape") if match else None
