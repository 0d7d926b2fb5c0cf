# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One line per document: canonical Extended JSON that gives the same BSON bytes back, for every type; the
documents it cannot carry are refused naming why; the order-free digest."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

# type(x) is T: a bool, an Int64 and an int are told apart here on purpose.
# pylint: disable=unidiomatic-typecheck

import datetime
import hashlib
import json
import re
import struct
import uuid

import bson
import pytest
from bson import json_util
from bson.binary import Binary
from bson.code import Code
from bson.codec_options import DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import extjson

JSON_UTIL = json_util.JSONOptions(json_mode=json_util.JSONMode.CANONICAL,
                                  datetime_conversion=DatetimeConversion.DATETIME_AUTO)

VALUES = {
    "objectid": ObjectId("5f1d7a2b9c8e4b3a2d1c0b0a"),
    "uuid_string": str(uuid.UUID(int=7)),
    "date": datetime.datetime(2021, 3, 4, 5, 6, 7, 891000),
    "date_epoch": datetime.datetime(1970, 1, 1),
    "date_1969": datetime.datetime(1969, 12, 31, 23, 59, 59, 999000),
    "date_year_1": DatetimeMS(-62135596800000),
    "date_year_10000": DatetimeMS(253402300800000),
    "date_far_negative": DatetimeMS(-(2 ** 62)),
    "bin0": b"\x00\x01\xff",
    "bin0_empty": b"",
    "bin3": Binary(uuid.UUID(int=3).bytes, 3),
    "bin4": Binary(uuid.UUID(int=4).bytes, 4),
    "bin5": Binary(hashlib.md5(b"x").digest(), 5),
    "bin128": Binary(b"user defined", 0x80),
    "decimal": Decimal128("1234.5678901234567890123456789"),
    "decimal_nan": Decimal128("NaN"),
    "decimal_neg_zero": Decimal128("-0"),
    "int64_small": Int64(5),
    "int64_big": Int64(2 ** 62),
    "int64_min": Int64(-(2 ** 63)),
    "int32": 7,
    "int32_min": -(2 ** 31),
    "int32_max": 2 ** 31 - 1,
    "double": 0.1,
    "double_int": 3.0,
    "double_big": 1e308,
    "double_tiny": 5e-324,
    "neg_zero": -0.0,
    "nan": float("nan"),
    "inf": float("inf"),
    "ninf": float("-inf"),
    "true": True,
    "false": False,
    "null": None,
    "regex": Regex("^a.*b$", "imsx"),
    "regex_u": Regex("\\w+", "u"),
    "regex_none": Regex("x", ""),
    "timestamp": Timestamp(1700000000, 42),
    "timestamp_max": Timestamp(2 ** 32 - 1, 2 ** 32 - 1),
    "minkey": MinKey(),
    "maxkey": MaxKey(),
    "code": Code("function () { return 1; }"),
    "code_scope": Code("function () { return x; }", {"x": 1, "y": {"z": Int64(2)}}),
    "dbref": DBRef("coll", ObjectId("5f1d7a2b9c8e4b3a2d1c0b0b"), "db2", extra=1),
    "nested": [[1, [2.5, "x"]], {"a": [], "b": {}}, []],
    "utf8": "h\u00e9llo \u2028 \u2029 \U0001f600 \x00 \x1f \x7f \"quoted\" \\back\n newline",
    "empty_string": "",
}


def _raw(doc):
    return bson.encode(doc)


def _round_trip(raw):
    line = extjson.encode(raw)
    assert b"\n" not in line and not line.endswith(b"\r")
    assert bson.encode(extjson.decode(line)) == raw
    assert bson.encode(extjson.decode(line.decode("utf-8"))) == raw
    return line


@pytest.mark.parametrize("name", sorted(VALUES))
def test_every_type_round_trips_byte_identical(name):
    raw = _raw({"_id": 1, name: VALUES[name], "after": "x"})
    line = _round_trip(raw)
    # the same text pymongo's own canonical writer gives, only without spaces
    reference = json_util.dumps(bson.decode(raw, extjson.DECODE_OPTIONS), json_options=JSON_UTIL,
                                separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert line == reference


def test_all_types_in_one_document_and_key_order_kept():
    doc = dict(VALUES)
    doc = dict(reversed(list(doc.items())))  # an order bson would not choose
    raw = _raw(doc)
    line = _round_trip(raw)
    assert list(json.loads(line)) == list(doc)


def test_canonical_forms_keep_the_types_plain_json_loses():
    line = extjson.encode(_raw({"a": Int64(1), "b": 1, "c": -0.0, "d": VALUES["date_year_10000"]}))
    assert json.loads(line) == {"a": {"$numberLong": "1"}, "b": {"$numberInt": "1"},
                                "c": {"$numberDouble": "-0.0"}, "d": {"$date": {"$numberLong": "253402300800000"}}}


def test_line_is_utf8_with_separator_characters_unescaped_but_newlines_escaped():
    line = extjson.encode(_raw({"s": "a\u2028b\nc"}))
    assert "\u2028".encode("utf-8") in line
    assert b"\\n" in line and b"\n" not in line


def test_deeply_nested_document():
    doc = value = {}
    for _unused in range(90):
        value["d"] = {}
        value = value["d"]
    _round_trip(_raw(doc))


def test_large_document():
    _round_trip(_raw({"_id": "big", "blob": b"\x00" * (4 << 20), "list": list(range(20000))}))


# -- lossy documents ---------------------------------------------------------------------------------------------
def _element(kind, key, payload):
    return bytes([kind]) + key.encode("utf-8") + b"\x00" + payload


def _doc(*elements):
    body = b"".join(elements) + b"\x00"
    return struct.pack("<i", len(body) + 4) + body


def _string(text):
    data = text.encode("utf-8") + b"\x00"
    return struct.pack("<i", len(data)) + data


ID = _element(0x02, "_id", _string("doc-1"))


@pytest.mark.parametrize("raw, reason", [
    (_doc(ID, _element(0x0E, "sym", _string("s"))), "field sym holds the deprecated type Symbol"),
    (_doc(ID, _element(0x06, "undef", b"")), "field undef holds the deprecated type Undefined"),
    (_doc(ID, _element(0x0C, "ptr", _string("db.c") + bytes(12))),
     "field ptr holds the deprecated type DBPointer"),
    (_doc(ID, _element(0x10, "a", struct.pack("<i", 1)), _element(0x10, "a", struct.pack("<i", 2))),
     "field a appears twice"),
    (_doc(ID, _element(0x03, "sub", _doc(_element(0x06, "u", b"")))),
     "field sub.u holds the deprecated type Undefined"),
    (_doc(ID, _element(0x04, "arr", _doc(_element(0x0E, "0", _string("s"))))),
     "field arr.0 holds the deprecated type Symbol"),
    (_doc(ID, _element(0x01, "nan", struct.pack("<Q", 0x7FF8000000000001))), "field nan holds a NaN with a payload"),
    (_doc(ID, _element(0x02, "bad", struct.pack("<i", 3) + b"\xff\xfe\x00")),
     "field bad holds a string that is not UTF-8"),
])
def test_lossy_documents_are_refused_naming_the_reason(raw, reason):
    with pytest.raises(extjson.Lossy, match=re.escape(reason)):
        extjson.encode(raw)
    assert issubclass(extjson.Lossy, FerryError)


def test_dollar_field_that_reads_back_as_a_type_is_lossy():
    raw = _raw({"_id": 1, "x": {"$oid": "5f1d7a2b9c8e4b3a2d1c0b0a"}})
    with pytest.raises(extjson.Lossy, match=r"'\$'"):
        extjson.encode(raw)


def test_dollar_in_values_and_harmless_dollar_keys_pass():
    _round_trip(_raw({"_id": "$x", "price": "$5", "nested": {"$comment": "not a wrapper key"}}))


def test_raw_id_names_documents():
    assert extjson.raw_id(_raw({"_id": ObjectId("5f1d7a2b9c8e4b3a2d1c0b0a")})) == '{"$oid":"5f1d7a2b9c8e4b3a2d1c0b0a"}'
    assert extjson.raw_id(_raw({"_id": "a\nb"})) == '"a\\nb"'
    assert extjson.raw_id(_raw({"x": 1})) == "(no _id)"
    # an embedded document as _id (a compound key) is named too, in its key order
    assert extjson.raw_id(_raw({"_id": {"composite": 1, "part": "a"}})) == '{"composite":{"$numberInt":"1"},"part":"a"}'


def test_decode_refuses_what_is_not_a_document():
    with pytest.raises(ValueError):
        extjson.decode(b"[1,2]")
    with pytest.raises(ValueError):
        extjson.decode(b"{not json")


# -- the digest --------------------------------------------------------------------------------------------------
def test_digest_is_order_free_and_wraps_at_2_to_256():
    raws = [_raw({"_id": i}) for i in range(50)]
    forward = backward = 0
    for raw in raws:
        forward = extjson.digest_add(forward, raw)
    for raw in reversed(raws):
        backward = extjson.digest_add(backward, raw)
    assert forward == backward and 0 <= forward < 2 ** 256
    assert len(extjson.digest_hex(forward)) == 64 and len(extjson.digest_hex(0)) == 64
    expected = sum(int(hashlib.sha256(raw).hexdigest(), 16) for raw in raws) % 2 ** 256
    assert forward == expected
    assert extjson.digest_add_sha(0, hashlib.sha256(raws[0]).digest()) == extjson.digest_add(0, raws[0])
    assert extjson.digest_add(2 ** 256 - 1, raws[0]) < 2 ** 256


# -- property: any document of JSON-ish and BSON values ----------------------------------------------------------
_scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=20),
    st.integers(min_value=-(2 ** 31), max_value=2 ** 31 - 1),
    st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1).map(Int64),
    st.floats(allow_nan=False, allow_infinity=True), st.just(float("nan")),  # hypothesis NaNs carry payloads
    st.binary(max_size=20).map(lambda data: Binary(data, 0x80)),
    st.integers(min_value=-(2 ** 62), max_value=2 ** 62).map(DatetimeMS),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.text(max_size=8).filter(lambda key: "\x00" not in key and not key.startswith("$")),
                    inner, max_size=4)), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8).filter(lambda key: "\x00" not in key and not key.startswith("$")),
                       _values, max_size=6))
def test_property_round_trip(doc):
    raw = _raw(doc)
    try:
        line = extjson.encode(raw)
    except extjson.Lossy:  # NaN floats are canonical from Python: nothing here may be lossy
        raise
    assert bson.encode(extjson.decode(line)) == raw


@pytest.mark.parametrize("name", sorted(VALUES))
def test_orjson_and_standard_writer_give_the_same_bytes(name):
    if extjson.orjson is None:
        pytest.skip("orjson not installed")
    converted = extjson._convert_doc(bson.decode(_raw({name: VALUES[name]}), extjson.DECODE_OPTIONS))
    assert extjson.orjson.dumps(converted) == extjson._dumps_json(converted)


# -- decode against json_util: the same BSON, or both refuse ----------------------------------------------------
def _fresh_object_id(line):
    """json_util reads {"$oid": null} as ObjectId(None): a new id every time, nothing to compare."""
    return '"$oid": null' in line or '"$oid":null' in line


def _json_util_bson(line):
    try:
        return bson.encode(json_util.loads(line, json_options=JSON_UTIL))
    except Exception:  # json_util's refusals, or a value bson cannot hold
        return None


def _decode_bson(line):
    try:
        doc = extjson.decode(line)
    except ValueError:  # decode refuses with ValueError only
        return None
    assert type(doc) is dict
    try:
        return bson.encode(doc)
    except Exception:
        return None


def _same_as_json_util(line):
    expected = _json_util_bson(line)
    assert _decode_bson(line) == expected
    assert _decode_bson(line.encode("utf-8")) == expected
    return expected


OID = "5f1d7a2b9c8e4b3a2d1c0b0a"


@pytest.mark.parametrize("value, kind", [
    ('{"$numberInt":"1"}', int), ('{"$numberInt":"-0"}', int), ('{"$numberInt":"-2147483648"}', int),
    ('{"$numberInt":"2147483647"}', int), ('{"$numberInt":"007"}', int), ('{"$numberInt":" 5"}', int),
    ('{"$numberInt":"1_000"}', int),
    ('{"$numberInt":"3000000000"}', Int64),            # json_util's int, written as Int64 by bson
    ('{"$numberInt":"99999999999999999999"}', None),  # beyond 64 bits: bson refuses
    ('{"$numberInt":"-9223372036854775809"}', None),
    ('{"$numberInt":"1.5"}', None), ('{"$numberInt":5}', None), ('{"$numberInt":"x"}', None),
    ('{"$numberLong":"5"}', Int64), ('{"$numberLong":"-5"}', Int64), ('{"$numberLong":"2147483648"}', Int64),
    ('{"$numberLong":"12345678901"}', Int64), ('{"$numberLong":"-12345678901"}', Int64),
    ('{"$numberLong":"01234567890"}', Int64), ('{"$numberLong":"999999999999999999"}', Int64),
    ('{"$numberLong":"9223372036854775807"}', Int64), ('{"$numberLong":"-9223372036854775808"}', Int64),
    ('{"$numberLong":"9223372036854775808"}', None), ('{"$numberLong":"1.0"}', None),
    ('{"$numberDouble":"1"}', float), ('{"$numberDouble":"-0.0"}', float), ('{"$numberDouble":"0.1"}', float),
    ('{"$numberDouble":"NaN"}', float), ('{"$numberDouble":"nan"}', float), ('{"$numberDouble":"Infinity"}', float),
    ('{"$numberDouble":"-Infinity"}', float), ('{"$numberDouble":"1e+308"}', float),
    ('{"$numberDouble":"5e-324"}', float), ('{"$numberDouble":"1e400"}', float), ('{"$numberDouble":"1E5"}', float),
    ('{"$numberDouble":"1.5e-07"}', float), ('{"$numberDouble":"00.5"}', float),
    ('{"$numberDouble":"123456789012345678901234567890.5"}', float), ('{"$numberDouble":"x"}', None),
    ('{"$date":{"$numberLong":"1600000000000"}}', datetime.datetime),
    ('{"$date":{"$numberLong":"5"}}', datetime.datetime),
    ('{"$date":{"$numberLong":"-62135596800001"}}', DatetimeMS),
    ('{"$date":{"$numberLong":"253402300800000"}}', DatetimeMS),
    ('{"$date":1600000000000}', datetime.datetime), ('{"$date":"2020-01-02T03:04:05.678Z"}', datetime.datetime),
    ('{"$date":{"$numberLong":"1"},"x":1}', None),
    ('{"$oid":"%s"}' % OID, ObjectId), ('{"$oid":"xyz"}', None), ('{"$oid":{"$numberInt":"1"}}', None),
    ('{"$binary":{"base64":"AAAAAAAAAAAAAAAAAAAABA==","subType":"04"}}', Binary),
    ('{"$binary":{"base64":"AAAAAAAAAAAAAAAAAAAAAw==","subType":"03"}}', Binary),
    ('{"$binary":{"base64":"","subType":"80"}}', Binary), ('{"$binary":{"base64":"!!","subType":"00"}}', bytes),
    ('{"$numberDecimal":"1.5"}', Decimal128), ('{"$numberDecimal":"-0"}', Decimal128),
    ('{"$regularExpression":{"pattern":"^a","options":"im"}}', Regex),
    ('{"$timestamp":{"t":1,"i":2}}', Timestamp), ('{"$minKey":1}', MinKey), ('{"$maxKey":1}', MaxKey),
    ('{"$code":"f()"}', Code), ('{"$code":"f()","$scope":{"x":{"$numberInt":"1"}}}', Code),
    ('{"$symbol":"s"}', str), ('{"$undefined":true}', type(None)),
    ('{"$dbPointer":{"$ref":"c","$id":{"$oid":"%s"}}}' % OID, DBRef),
    ('{"$ref":"c","$id":{"$numberInt":"1"}}', DBRef),
    ('{"$ref":"c","$id":{"$numberLong":"12345678901"},"$db":"d","x":{"$numberInt":"2"}}', DBRef),
    ('{"$foo":"bar"}', dict), ('{"$foo":{"$numberInt":"1"},"b":[{"$numberLong":"12345678901"}]}', dict),
    ('{"$comment":"x","$numberInt":"5"}', None), ('{"x":1,"$numberInt":"5"}', None),
    ('{"$numberInt":"5","x":1}', None), ('{"\\u0024numberInt":"5"}', int), ('{"\\u0024oid":"%s"}' % OID, ObjectId),
    ('{ "$numberInt" : "5" }', int), ('"{\\"$numberInt\\":\\"5\\"}"', str),
    ('[{"$numberInt":"1"},{"$numberDouble":"2.5"},{"$numberLong":"12345678901"},{"$numberDouble":"-0.0"}]', list),
    ('NaN', float), ('-Infinity', float), ('1', int), ('12345678901', Int64), ('1.0', float), ('-0.0', float),
    ('9223372036854775807', Int64), ('18446744073709551615', None), ('true', bool), ('null', type(None)),
])
def test_decode_reads_every_wrapper_as_json_util_does(value, kind):
    line = '{"_id":{"$oid":"%s"},"a":%s,"n":{"$numberInt":"7"},"d":{"$numberDouble":"0.5"}}' % (OID, value)
    expected = _same_as_json_util(line)
    assert (expected is None) == (kind is None)
    if kind is not None:  # the Python type too: Binary subtypes 3 and 4 stay Binary, not UUID
        decoded = extjson.decode(line)["a"]
        assert type(decoded) is kind or (kind is Int64 and type(decoded) is int and abs(decoded) >= 2 ** 31)


@pytest.mark.parametrize("line", [
    b'[1,2]', b'{not json', b'', b'{"a":1', b'{"a":1}x', b'{"$oid":"%s"}' % OID.encode(),
    b'{"$numberInt":"1"}', b'{"$ref":"c","$id":1}', b'{"a":{"$numberInt":5}}', b'{"a":{"$oid":"zz"}}',
    b'{"a":{"$binary":{"base64":"AA=="}}}', b'{"a":"\xff"}', b'{"a":"' + b'\xc3' + b'"}',
    b'{"a":{"$numberInt":"1"}' + b']' * 3,
])
def test_decode_refuses_with_value_error(line):
    with pytest.raises(ValueError):
        extjson.decode(line)


def test_decode_keeps_text_that_only_looks_like_a_wrapper():
    doc = {"s": '{"$numberInt":"5"}', "t": '{"$numberLong":"12345678901"}', "$price": "$5",
           "u": "\\u0024oid", "k": {'{"$numberInt":"1"}': 1}}
    line = extjson.encode(_raw(doc))
    assert extjson.decode(line) == doc
    assert _same_as_json_util(line.decode("utf-8")) == _raw(doc)


def test_decode_without_orjson_gives_the_same_documents(monkeypatch):
    raw = _raw(dict(VALUES))
    line = extjson.encode(raw)
    monkeypatch.setattr(extjson, "orjson", None)
    assert bson.encode(extjson.decode(line)) == raw
    with pytest.raises(ValueError):
        extjson.decode(b'{"$oid":"%s"}' % OID.encode())


_ALL_SCALARS = st.one_of(
    _scalars, st.sampled_from([VALUES[name] for name in sorted(VALUES)]),
    st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1),
    st.binary(max_size=16).map(lambda data: Binary(data, 4)), st.binary(max_size=16).map(lambda data: Binary(data, 3)),
    st.integers(min_value=0, max_value=2 ** 63 - 1).map(DatetimeMS),
    st.floats(width=64), st.builds(lambda digits, exponent: Decimal128("%de%d" % (digits, exponent)),
                                   st.integers(-(10 ** 30), 10 ** 30), st.integers(-6000, 6000)),
)
_KEYS = st.one_of(st.text(max_size=8).filter(lambda key: "\x00" not in key),
                  st.sampled_from(["$foo", "$comment", "$numberInt", "$oid", "$date", "$ref", "$id", "$db", "a"]))
_ALL_VALUES = st.recursive(_ALL_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _ALL_VALUES, max_size=6), st.booleans())
def test_property_decode_equals_json_util_for_random_documents(doc, compact):
    """Random documents of every type, written by json_util (canonical, compact or with spaces) and by encode:
    decode gives json_util's BSON, or both refuse (a "$" key json_util reads as a wrapper)."""
    try:
        raw = _raw(doc)
    except Exception:  # a document bson itself refuses: nothing to read back
        return
    decoded = bson.decode(raw, extjson.DECODE_OPTIONS)
    separators = (",", ":") if compact else (", ", ": ")
    line = json_util.dumps(decoded, json_options=JSON_UTIL, separators=separators)
    assume(not _fresh_object_id(line))
    _same_as_json_util(line)
    try:
        line = extjson.encode(raw)
    except extjson.Lossy:  # a "$" key read back as a type, a NaN payload, ...: refused at backup time
        return
    assert _decode_bson(line) == raw == _json_util_bson(line.decode("utf-8"))


_WRAPPER_TEXT = st.one_of(
    st.sampled_from(["0", "-0", "007", "1.5", "1e5", "1E5", "-1e-5", "NaN", "Infinity", "-Infinity", " 1", "x", "",
                     "2147483648", "12345678901", "-12345678901", "999999999999999999", "9223372036854775808",
                     "1e400", "5e-324", "-0.0", "01234567890"]),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr))
_WRAPPERS = st.one_of(
    st.builds(lambda kind, text: {kind: text},
              st.sampled_from(["$numberInt", "$numberLong", "$numberDouble", "$numberDecimal", "$oid"]), _WRAPPER_TEXT),
    st.builds(lambda text: {"$date": {"$numberLong": text}}, _WRAPPER_TEXT),
    st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1), st.floats(), st.text(max_size=6), st.none())
_JSONISH = st.recursive(_WRAPPERS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=3)), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _JSONISH, max_size=5), st.booleans(), st.booleans())
def test_property_decode_equals_json_util_for_wrapper_like_json(value, compact, ascii_only):
    """Hand-written JSON with wrappers holding odd texts, user "$" keys and plain numbers (within 64 bits; beyond,
    orjson reads a double, see decode's docstring)."""
    separators = (",", ":") if compact else (", ", ": ")
    line = json.dumps(value, separators=separators, ensure_ascii=ascii_only)
    assume(not _fresh_object_id(line))
    _same_as_json_util(line)
