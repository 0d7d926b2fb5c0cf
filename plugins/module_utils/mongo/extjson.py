# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One line per document: canonical Extended JSON (the MongoDB spec's ``relaxed: false`` form), checked lossless.

:func:`encode` takes a document's raw BSON and returns one line that :func:`decode` turns back into the same
document: ``bson.encode(decode(encode(raw))) == raw``. Canonical mode keeps what plain JSON loses: Int32 vs Int64
(``$numberInt``/``$numberLong``), ``-0.0`` and NaN, Decimal128, Binary subtypes, dates outside years 1..9999,
Regex, Timestamp, Min/MaxKey, Code with scope, key order.

Some BSON cannot come back byte for byte (deprecated types pymongo turns into others: Symbol into str,
Undefined into None, DBPointer into DBRef; a NaN with a payload; a key twice in one document; strings that are not
UTF-8). :func:`encode` finds them by re-encoding the decoded document and raises :class:`Lossy` naming the reason.

Speed: pymongo's ``json_util.dumps`` walks each value through Python hooks; the converter here dispatches on the
exact type once per value and leaves the text to the C JSON encoder, with the same output (the unit tests compare
the two), several times faster. Reading turns the canonical numbers into plain JSON numbers with one regular
expression and leaves the rest to orjson: a line without other wrappers never reaches Python code per value
(about 2.7 times faster than reviving every wrapper); ``json_util``'s parser is kept for the rare types.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# type(x) is T, not isinstance: a bool is an int and an Int64 is an int to isinstance, and each must keep its own
# BSON type.
# pylint: disable=unidiomatic-typecheck

import base64
import datetime
import hashlib
import json
import math
import re
import struct
import uuid

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError

try:
    import bson
    import bson.errors
    from bson import json_util
    from bson.binary import Binary
    from bson.code import Code
    from bson.codec_options import CodecOptions, DatetimeConversion
    from bson.datetime_ms import DatetimeMS, _datetime_to_millis, _millis_to_datetime
    from bson.dbref import DBRef
    from bson.decimal128 import Decimal128
    from bson.errors import InvalidBSON
    from bson.int64 import Int64
    from bson.max_key import MaxKey
    from bson.min_key import MinKey
    from bson.objectid import ObjectId
    from bson.raw_bson import RawBSONDocument
    from bson.regex import Regex
    from bson.timestamp import Timestamp
except ImportError as exc:  # connection.check_pymongo reports it
    bson = None
    BSON_IMPORT_ERROR = exc
    RAW_OPTIONS = DECODE_OPTIONS = JSON_OPTIONS = None
else:
    BSON_IMPORT_ERROR = None
    # Raw documents: the bytes the server sent, re-encoded never.
    RAW_OPTIONS = CodecOptions(document_class=RawBSONDocument,
                               datetime_conversion=DatetimeConversion.DATETIME_AUTO)
    # DATETIME_AUTO: a date outside years 1..9999 becomes DatetimeMS instead of an error.
    DECODE_OPTIONS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
    JSON_OPTIONS = json_util.JSONOptions(json_mode=json_util.JSONMode.CANONICAL,
                                         datetime_conversion=DatetimeConversion.DATETIME_AUTO)

try:
    import orjson  # optional: a faster JSON writer, same output
except ImportError:
    orjson = None

_DIGEST_MOD = 1 << 256
_INT32 = 1 << 31
_EPOCH = datetime.datetime(1970, 1, 1)
_MILLISECOND = datetime.timedelta(milliseconds=1)
_REGEX_FLAGS = ((2, "i"), (4, "l"), (8, "m"), (16, "s"), (32, "u"), (64, "x"))  # re's values, json_util's order
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)


def _dumps_json(value):
    return _ENCODER.encode(value).encode("utf-8")


if orjson is not None:
    _dumps = orjson.dumps  # the same bytes as _dumps_json for what _convert makes (tested), five times faster
else:
    _dumps = _dumps_json


class Lossy(FerryError):
    """A document that canonical Extended JSON cannot carry unchanged; the message says why."""


# -- encoding ----------------------------------------------------------------------------------------------------
def encode(raw):
    """The canonical Extended JSON of the BSON document ``raw`` (bytes), one line of UTF-8, no newline at the end.
    Raises :class:`Lossy` when the line would not give these bytes back."""
    try:
        doc = bson.decode(raw, DECODE_OPTIONS)
    except (InvalidBSON, ValueError, OverflowError) as exc:
        raise Lossy("the document cannot be decoded (%s)%s" % (exc, _reason_suffix(raw)))
    if bson.encode(doc) != raw:
        raise Lossy(lossy_reason(raw))
    line = _dumps(_convert_doc(doc))
    # A field named like a type wrapper ("$oid") would read back as that type, and a NaN with a payload as the
    # plain NaN: the rare document with a "$" or a NaN is read back and compared whole.
    if (b"$" in raw or b'"NaN"' in line) and _reencode(line) != raw:
        raise Lossy(_scan_quietly(raw) or "a field name starting with '$' would read back as an Extended JSON type")
    return line


def encode_lossy(raw):
    """The line of a document :func:`encode` refused, as pymongo reads it (a Symbol as a string, ...): what a
    ``lossy: warn`` backup writes. Raises when the document cannot even be decoded."""
    return _dumps(_convert_doc(bson.decode(raw, DECODE_OPTIONS)))


def _reencode(line):
    try:
        return bson.encode(decode(line))
    except Exception:  # any failure to read it back is the loss this check is for
        return None


def _convert_doc(doc):
    out = {}
    for key, value in doc.items():
        kind = type(value)  # the commonest types inline: a call per value is most of the cost
        if kind is str or value is None or kind is bool:
            out[key] = value
        elif kind is int and -_INT32 <= value < _INT32:
            out[key] = {"$numberInt": str(value)}
        elif kind is float and value - value == 0.0:  # finite
            out[key] = {"$numberDouble": repr(value)}
        else:
            out[key] = _convert(value)
    return out


def _convert_list(values):
    out = []
    for value in values:
        kind = type(value)
        if kind is str or value is None or kind is bool:
            out.append(value)
        elif kind is int and -_INT32 <= value < _INT32:
            out.append({"$numberInt": str(value)})
        elif kind is float and value - value == 0.0:
            out.append({"$numberDouble": repr(value)})
        else:
            out.append(_convert(value))
    return out


def _convert(value):
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    convert = _CONVERTERS.get(kind)
    if convert is not None:
        return convert(value)
    for base, convert in _BASES:  # subclasses (an application's dict type, say)
        if isinstance(value, base):
            return convert(value)
    raise Lossy("a value of type %s has no Extended JSON form" % kind.__name__)


def _int(value):
    if -_INT32 <= value < _INT32:
        return {"$numberInt": str(value)}
    return {"$numberLong": str(value)}


def _float(value):
    if math.isnan(value):
        return {"$numberDouble": "NaN"}
    if math.isinf(value):
        return {"$numberDouble": "Infinity" if value > 0 else "-Infinity"}
    return {"$numberDouble": repr(value)}


def _binary(data, subtype):
    return {"$binary": {"base64": base64.b64encode(data).decode("ascii"), "subType": "%02x" % subtype}}


def _regex(value):
    flags = value.flags if isinstance(value.flags, int) else 0
    options = "".join(letter for bit, letter in _REGEX_FLAGS if flags & bit)
    pattern = value.pattern if isinstance(value.pattern, str) else value.pattern.decode("utf-8")
    return {"$regularExpression": {"pattern": pattern, "options": options}}


def _code(value):
    if value.scope is None:
        return {"$code": str(value)}
    return {"$code": str(value), "$scope": _convert_doc(value.scope)}


def _datetime(value):
    if value.tzinfo is None:  # what decoding gives (UTC, naive): plain arithmetic, no time tuple
        return {"$date": {"$numberLong": str((value - _EPOCH) // _MILLISECOND)}}
    return {"$date": {"$numberLong": str(_datetime_to_millis(value))}}


def _uuid(value):  # only with a uuid_representation; the default decoding keeps Binary
    return _binary(value.bytes, 4)


_CONVERTERS = {
    int: _int,
    Int64: lambda value: {"$numberLong": str(int(value))},
    float: _float,
    dict: _convert_doc,
    list: _convert_list,
    bytes: lambda value: _binary(value, 0),
    Binary: lambda value: _binary(bytes(value), value.subtype),
    ObjectId: lambda value: {"$oid": str(value)},
    datetime.datetime: _datetime,
    DatetimeMS: lambda value: {"$date": {"$numberLong": str(int(value))}},
    Decimal128: lambda value: {"$numberDecimal": str(value)},
    Regex: _regex,
    Code: _code,
    Timestamp: lambda value: {"$timestamp": {"t": value.time, "i": value.inc}},
    MinKey: lambda value: {"$minKey": 1},
    MaxKey: lambda value: {"$maxKey": 1},
    DBRef: lambda value: _convert_doc(value.as_doc()),
    uuid.UUID: _uuid,
} if bson is not None else {}
_BASES = tuple((base, _CONVERTERS[base]) for base in (Int64, Binary, Code, dict, list, int, float)) \
    if bson is not None else ()


# -- decoding ----------------------------------------------------------------------------------------------------
# The canonical numbers that make up most of a line, turned into plain JSON numbers before the C parser reads it:
# a JSON integer is what json_util makes of {"$numberInt": "5"}, a JSON number with "." or "e" what it makes of
# {"$numberDouble": "0.5"} (orjson rounds as float() does), and {"$numberLong": ...} only with 11 to 18 digits:
# a value bson.encode writes as an Int64 anyway. In valid JSON '{"$' cannot sit inside a string (its quote would
# end the string), so only real one-key wrappers match; anything else (NaN, "-0" with leading zeros, a longer
# number, spaces) is left for the wrapper pass below. re.split keeps the captured number between the pieces.
_NUMBERS = re.compile(
    rb'\{"\$number(?:Int":"(?=-?\d{1,18}")|Long":"(?=-?[1-9]\d{10,17}")'
    rb'|Double":"(?=-?\d+(?:\.\d+(?:e[+-]?\d+)?|e[+-]?\d+)"))([^"]+)"\}').split
_JOIN = b"".join


def _date(value):
    if isinstance(value, Int64):  # {"$numberLong": ...} inside, read already
        return _millis_to_datetime(int(value), DECODE_OPTIONS)
    return json_util.object_pairs_hook([("$date", value)], JSON_OPTIONS)


# The wrappers left in a line, read without json_util's general parser; None: json_util decides.
_FAST = {
    "$numberInt": lambda value: int(value) if type(value) is str and -_INT32 <= int(value) < _INT32 else None,
    "$numberLong": lambda value: Int64(int(value)) if type(value) is str else None,
    "$numberDouble": lambda value: float(value) if type(value) is str else None,
    "$oid": lambda value: ObjectId(value) if type(value) is str else None,
    # {"$date": {"$numberLong": "..."}} after _NUMBERS: {"$date": 1600000000000}
    "$date": lambda value: _millis_to_datetime(value, DECODE_OPTIONS) if type(value) is int else None,
} if bson is not None else {}


def _pairs(pairs):
    for key, _value in pairs:
        if key[:1] == "$":
            break
    else:
        return dict(pairs)
    if len(pairs) == 1:
        key, value = pairs[0]
        if key == "$date":
            return _date(value)
        result = _fast(key, value)
        if result is not None:
            return result
    return json_util.object_pairs_hook(pairs, JSON_OPTIONS)


def _fast(key, value):
    """The value of the one-key wrapper ``{key: value}`` when it is one of _FAST's, else None."""
    convert = _FAST.get(key)
    if convert is None:
        return None
    try:
        return convert(value)
    except (ValueError, TypeError, OverflowError, bson.errors.InvalidId):
        return None


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs)


def decode(line):
    """The document of one line :func:`encode` wrote (bytes or str), as a dict; ``bson.encode`` of it gives the
    original bytes back. Any line ``json_util.loads`` reads (canonical options) gives the same BSON; the others
    raise ValueError (not JSON, not an object, a malformed wrapper). One difference, outside canonical output: a
    plain JSON integer beyond 64 bits, which json_util reads as an int bson.encode refuses, orjson reads as a
    double (a scan for it would add some 15 % to every line; a ferry member's sha256 is checked first)."""
    doc = None
    if orjson is not None:
        flat = _JOIN(_NUMBERS(line if type(line) is bytes else _utf8(line)))
        try:
            doc = orjson.loads(flat)
        except orjson.JSONDecodeError:
            doc = None  # beyond orjson (an integer over 64 bits, NaN tokens, ...): the standard parser decides
        # done unless a key may still start with "$" (or \u0024); one-byte searches first, they are the fast ones
        if type(doc) is dict and (b"$" not in flat or b'"$' not in flat) and (
                b"\\" not in flat or b"\\u0024" not in flat):
            return doc
    try:
        doc = _revive_doc(doc) if type(doc) is dict else _standard(line)
    except ValueError:
        raise
    except Exception as exc:  # json_util's refusals: TypeError, KeyError, InvalidId, ... of a malformed wrapper
        raise ValueError("not Extended JSON: %s: %s" % (type(exc).__name__, exc)) from exc
    if type(doc) is not dict:  # a list, or a wrapper's value ({"$oid": ...} alone)
        raise ValueError("the line is not a JSON object holding a document (it reads as %s)" % type(doc).__name__)
    return doc


def _standard(line):
    if isinstance(line, (bytes, bytearray, memoryview)):
        line = bytes(line).decode("utf-8")
    return _DECODER.decode(line)


def _utf8(line):
    if isinstance(line, str):
        try:
            return line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the standard parser decides
            return b""
    return bytes(line) if isinstance(line, (bytearray, memoryview)) else b""


def _revive(value):
    """A value orjson read, with its Extended JSON wrappers turned into BSON types (children first, as the
    standard parser's hook sees them)."""
    kind = type(value)
    if kind is dict:
        return _revive_doc(value)
    if kind is list:
        return [_revive(item) if type(item) in (dict, list) else item for item in value]
    return value


def _revive_doc(doc):
    if len(doc) == 1:  # most wrappers: {"$oid": "..."}
        for key, value in doc.items():
            result = _fast(key, value)
            if result is not None:
                return result
    wrapped = False
    for key, value in doc.items():
        if type(value) in (dict, list):
            doc[key] = _revive(value)
        if key[:1] == "$":
            wrapped = True
    return _pairs(list(doc.items())) if wrapped else doc


# -- the order-free digest ---------------------------------------------------------------------------------------
def digest_add(total, raw):
    """Add one document's raw BSON to a collection's digest: the sum of sha256(raw) as integers, mod 2**256, so
    that the digest does not depend on the order the documents were read in."""
    return (total + int.from_bytes(hashlib.sha256(raw).digest(), "big")) % _DIGEST_MOD


def digest_add_sha(total, sha_digest):
    """:func:`digest_add` for a sha256 already taken (its 32 bytes)."""
    return (total + int.from_bytes(sha_digest, "big")) % _DIGEST_MOD


def digest_hex(total):
    return "%064x" % total


def id_json(value):
    """The canonical Extended JSON of an ``_id`` value, as manifests and messages name a document."""
    return _dumps(_convert(value)).decode("utf-8")


def raw_id(raw):
    """The ``_id`` of a raw document, as :func:`id_json` writes it, or ``(no _id)``."""
    try:
        # decoded, not RawBSONDocument: an embedded-document _id would stay a RawBSONDocument id_json cannot write
        doc = bson.decode(raw, DECODE_OPTIONS)
        return id_json(doc["_id"]) if "_id" in doc else "(no _id)"
    except Exception:  # a document that cannot be decoded: named by its position by the caller
        return "(undecodable)"


# -- why a document is lossy -------------------------------------------------------------------------------------
_FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16, 0x7F: 0, 0xFF: 0}
_DEPRECATED = {0x06: "the deprecated type Undefined (it would come back as null)",
               0x0C: "the deprecated type DBPointer (it would come back as a DBRef document)",
               0x0E: "the deprecated type Symbol (it would come back as a string)"}
_CANONICAL_NAN = struct.pack("<d", float("nan"))


def lossy_reason(raw):
    """Why ``raw`` does not survive decode + encode, naming the field (``a.b.0``)."""
    return _scan_quietly(raw) or "re-encoding it gives different bytes (an unusual encoding pymongo normalises)"


def _reason_suffix(raw):
    found = _scan_quietly(raw)
    return (": " + found) if found else ""


def _scan_quietly(raw):
    try:
        return _scan(raw, 4, len(raw) - 1, "")
    except (IndexError, struct.error, ValueError):
        return None


def _scan(raw, pos, end, path):
    """The first lossy element of the document whose elements span raw[pos:end]."""
    seen = set()
    while pos < end:
        kind = raw[pos]
        key_end = raw.index(b"\x00", pos + 1)
        key = raw[pos + 1:key_end]
        name = path + key.decode("utf-8", "replace")
        if key in seen:
            return "field %s appears twice in one document (only the last would be kept)" % name
        seen.add(key)
        pos = key_end + 1
        if kind in _DEPRECATED:
            return "field %s holds %s" % (name, _DEPRECATED[kind])
        if kind == 0x01 and raw[pos:pos + 8] != _CANONICAL_NAN and math.isnan(struct.unpack_from("<d", raw, pos)[0]):
            return "field %s holds a NaN with a payload (it would come back as the plain NaN)" % name
        if kind in (0x03, 0x04):
            size = struct.unpack_from("<i", raw, pos)[0]
            found = _scan(raw, pos + 4, pos + size - 1, name + ".")
            if found:
                return found
            pos += size
        elif kind in (0x02, 0x0D, 0x0E):
            size = struct.unpack_from("<i", raw, pos)[0]
            try:
                raw[pos + 4:pos + 3 + size].decode("utf-8")
            except UnicodeDecodeError:
                return "field %s holds a string that is not UTF-8" % name
            pos += 4 + size
        elif kind == 0x05:
            pos += 5 + struct.unpack_from("<i", raw, pos)[0]
        elif kind == 0x0C:
            pos += 4 + struct.unpack_from("<i", raw, pos)[0] + 12
        elif kind in (0x0F,):
            pos += struct.unpack_from("<i", raw, pos)[0]
        elif kind == 0x0B:
            pos = raw.index(b"\x00", raw.index(b"\x00", pos) + 1) + 1
        elif kind in _FIXED:
            pos += _FIXED[kind]
        else:
            return "field %s has the unknown BSON type 0x%02x" % (name, kind)
    return None
