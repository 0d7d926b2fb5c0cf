# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the original MVI migration tool's database zips, in bounded memory.

The original (IBM vision-tools, misc/migrationAides) writes one member per collection, named exactly after the
collection (no directory, no extension), holding one JSON array made by ``json.dumps`` (server scope: compact;
user and project-group scope: ``indent=2``); an empty collection is ``[]``. ``json.dumps`` writes NaN and
Infinity as bare tokens, which Python's decoder accepts. The original read a member whole with ``json.loads``;
here the array is decoded one element at a time with ``raw_decode`` over chunks, so memory holds one chunk
and the document being decoded, whatever the member's size.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import codecs
import json
import re

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError

CHUNK = 1 << 20
_SPACE = re.compile(r"[ \t\n\r]*")
# The decoder the original's json.loads used: NaN, Infinity and -Infinity accepted, objects as dicts in order.
_DECODER = json.JSONDecoder()


class ArrayReader:
    """The elements of one JSON array read from a binary stream: iterate for ``(index, element)``.

    ``name`` is used in messages (``"<zip>: member <m>"``). Every element must be a JSON object. A stream
    that is not one array followed by nothing but whitespace is an error naming the element and the byte
    offset where decoding stopped.
    """

    def __init__(self, stream, name, chunk=CHUNK):
        self.stream = stream
        self.name = name
        self.chunk = chunk
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""
        self._pos = 0
        self._base = 0       # characters dropped from the front of the buffer
        self._eof = False

    # -- buffer --------------------------------------------------------------------------------------------
    def _more(self, size=None):
        """Append at least one more chunk of text; False at the end of the stream."""
        if self._eof:
            return False
        if self._pos:
            self._base += self._pos
            self._buf = self._buf[self._pos:]
            self._pos = 0
        data = self.stream.read(size or self.chunk)
        try:
            text = self._utf8.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise FerryError("%s: not UTF-8 text near character %d (%s)"
                             % (self.name, self._base + len(self._buf), exc.reason))
        if not data:
            self._eof = True
        self._buf += text
        return True

    def _skip_space(self):
        """Move past whitespace, reading on; the next character, or '' at the end."""
        while True:
            self._pos = _SPACE.match(self._buf, self._pos).end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._more():
                return ""

    def _where(self):
        return "character %d" % (self._base + self._pos)

    def _fail(self, what):
        raise FerryError("%s: %s at %s" % (self.name, what, self._where()))

    # -- elements ------------------------------------------------------------------------------------------
    def _value(self, index):
        """Decode the element starting at the current position. A value that ends exactly where the text read
        so far ends may be cut (a number, a token): read on before taking it, unless the stream has ended."""
        size = self.chunk
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._more(size):
                    size *= 2     # a large document: fewer and fewer retries over it
                    continue
                raise FerryError("%s: element %d is not valid JSON: %s at character %d"
                                 % (self.name, index, exc.msg, self._base + exc.pos))
            if end == len(self._buf) and self._more(size):
                size *= 2
                continue
            self._pos = end
            return value

    def __iter__(self):
        if self._skip_space() != "[":
            self._fail("not a JSON array (the original tool's member format): no '['")
        self._pos += 1
        index = 0
        following = self._skip_space()
        if following == "]":
            self._pos += 1
        else:
            while True:
                if not following:
                    self._fail("the array ends early (truncated member)")
                value = self._value(index)
                if not isinstance(value, dict):
                    self._fail("element %d is a %s, not a document" % (index, type(value).__name__))
                yield index, value
                index += 1
                following = self._skip_space()
                self._pos += 1
                if following == "]":
                    break
                if following != ",":
                    self._pos -= 1
                    self._fail("expected ',' or ']' after element %d" % (index - 1)
                               if following else "the array ends early after element %d (truncated member)"
                               % (index - 1))
                following = self._skip_space()
        if self._skip_space():
            self._fail("data after the end of the array")


def iter_documents(zipfile, member, chunk=CHUNK):
    """``(index, document)`` for each element of ``member`` of an open original-format ``zipfile``."""
    name = "%s: member %s" % (zipfile.filename, member)
    with zipfile.open(member) as stream:
        yield from ArrayReader(stream, name, chunk)
