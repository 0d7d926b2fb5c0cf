# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small YAML writer for the generated roles (stdlib only: PyYAML may be missing where the module runs).

Block style, two-space indents, keys in the order given: the output reads like a hand-written role and is
byte-identical for the same data. Strings are plain when YAML reads them back as the same string, else
double-quoted with YAML's escapes (never JSON's: a character beyond U+FFFF is one ``\\U`` escape); a long
quoted string is folded with escaped line breaks so no line outgrows the linters' limit. :class:`Unsafe`
strings carry Ansible's ``!unsafe`` tag: a path holding ``{{`` stays text when Ansible reads the variable.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

INDENT = "  "
FOLD = 100  # characters of a quoted string per line before it is folded
_PLAIN = re.compile(r"\A[A-Za-z_/][A-Za-z0-9_./+@-]*(?::[A-Za-z0-9_./+@-]+)*\Z")
# Plain scalars YAML 1.1 (PyYAML, Ansible) would read as something else than this string.
_RESOLVED = re.compile(r"\A(?:y|n|yes|no|true|false|on|off|null|~|\.inf|\.nan)\Z", re.IGNORECASE)
_JINJA = re.compile(r"\{[{%#]")
_ESCAPES = {"\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
            "\r": "\\r", "\x1b": "\\e", '"': '\\"', "\\": "\\\\", "\x85": "\\N", "\xa0": "\\_",
            "\u2028": "\\L", "\u2029": "\\P"}


class Unsafe(str):
    """A string Ansible must never template (``!unsafe``)."""


class Comment:
    """A full-line comment in a mapping: ``Comment("text")`` as a key, its value ignored."""

    def __init__(self, text):
        self.text = text


def maybe_unsafe(text):
    """``text`` as :class:`Unsafe` when it holds Jinja's markers, else as it is."""
    return Unsafe(text) if _JINJA.search(text) else text


def dump(value, header=None):
    """The YAML document of ``value`` (a dict or a list), with ``header`` comment lines first."""
    lines = ["---"]
    for line in header or ():
        lines.append(("# " + line).rstrip())
    lines.extend(_block(value, ""))
    return "\n".join(lines) + "\n"


def _block(value, indent):
    if isinstance(value, dict):
        if not value:
            return [indent + "{}"]
        return _mapping(value, indent)
    if isinstance(value, list):
        if not value:
            return [indent + "[]"]
        return _sequence(value, indent)
    return [indent + scalar(value, len(indent))]


def _mapping(value, indent):
    lines = []
    for key, item in value.items():
        if isinstance(key, Comment):
            lines.append((indent + "# " + key.text).rstrip())
            continue
        head = indent + _key(key) + ":"
        if isinstance(item, (dict, list)) and item:
            lines.append(head)
            lines.extend(_block(item, indent + INDENT))
        else:
            lines.extend(_inline(head, item, indent + INDENT))
    return lines


def _sequence(value, indent):
    lines = []
    for item in value:
        if isinstance(item, dict) and item:
            inner = _mapping(item, indent + INDENT)
            lines.append(indent + "- " + inner[0][len(indent) + len(INDENT):])
            lines.extend(inner[1:])
        elif isinstance(item, list) and item:
            lines.append(indent + "-")
            lines.extend(_block(item, indent + INDENT))
        else:
            lines.extend(_inline(indent + "-", item, indent + INDENT))
    return lines


def _inline(head, item, indent):
    """``head`` then a scalar (or an empty collection); a folded string goes on with ``indent``."""
    if isinstance(item, dict):
        return [head + " {}"]
    if isinstance(item, list):
        return [head + " []"]
    text = scalar(item, len(head) + 1, indent)
    return [head + " " + text]


def _key(key):
    if not isinstance(key, str) or not _PLAIN.match(key) or _RESOLVED.match(key):
        raise ValueError("generated YAML keys are plain names: %r" % (key,))
    return key


def scalar(value, column=0, indent=INDENT):
    """One scalar as YAML text. ``column``: where it starts (a long quoted string is folded at ``FOLD``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise ValueError("cannot write %r as YAML" % (value,))
    tag = "!unsafe " if isinstance(value, Unsafe) else ""
    if not tag and _PLAIN.match(value) and not _RESOLVED.match(value) and len(value) + column <= FOLD + 40:
        return value
    return tag + _quoted(value, indent)


def _quoted(text, indent):
    pieces = [_escape(char) for char in text]
    lines, line, width = [], [], 0
    for piece in pieces:
        if width >= FOLD:
            lines.append(line)
            line, width = [], 0
        if not line and lines and piece in (" ", "\t"):
            piece = "\\ " if piece == " " else "\\t"  # leading blanks of a continuation line would be dropped
        line.append(piece)
        width += len(piece)
    lines.append(line)
    body = ("\\\n" + indent).join("".join(chunk) for chunk in lines)
    return '"' + body + '"'


def _escape(char):
    found = _ESCAPES.get(char)
    if found is not None:
        return found
    code = ord(char)
    if 0x20 <= code <= 0x7e or (0xa0 <= code <= 0xd7ff) or (0xe000 <= code <= 0xfffd and code != 0xfeff) \
            or 0x10000 <= code <= 0x10ffff:
        return char
    if code <= 0xff:
        return "\\x%02x" % code
    if code <= 0xffff:
        return "\\u%04x" % code
    return "\\U%08x" % code
