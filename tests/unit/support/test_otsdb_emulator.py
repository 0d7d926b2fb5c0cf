"""Tests for tests/support/otsdb_emulator.py: it answers as an OpenTSDB 2.4 TSD does, errors included."""

import gzip
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.support.otsdb_emulator import ApiError, OpenTSDBEmulator, parse_time

BASE = 1500000000000  # 2017-07-14 02:40:00 UTC, in ms: 40 minutes into an hour row
BASE_S = BASE // 1000
TIMEOUT = 10
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def server():
    with OpenTSDBEmulator() as emulator:
        yield emulator


@pytest.fixture(name="tsdb")
def fixture_tsdb(server):
    server.reset()
    yield server
    server.clear_faults()


def query(tsdb, **body):
    return requests.post(tsdb.url + "/api/query", json=body, timeout=TIMEOUT)


def get_query(tsdb, **params):
    return requests.get(tsdb.url + "/api/query", params=params, timeout=TIMEOUT)


def put(tsdb, points, params="", **kwargs):
    return requests.post(tsdb.url + "/api/put" + params, json=points, timeout=TIMEOUT, **kwargs)


def error_of(response):
    return response.json()["error"]


def point(metric="sys.cpu", ts=BASE_S, value=1, **tags):
    return {"metric": metric, "timestamp": ts, "value": value, "tags": tags or {"host": "a"}}


# ------------------------------------------------------------------------------------------------
# /api/version, routing, methods

def test_version_and_versioned_path(tsdb):
    response = requests.get(tsdb.url + "/api/version", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["version"] == "2.4.1"
    assert requests.get(tsdb.url + "/api/v1/version", timeout=TIMEOUT).json()["version"] == "2.4.1"


def test_unknown_endpoint_and_wrong_method(tsdb):
    response = requests.get(tsdb.url + "/api/nope", timeout=TIMEOUT)
    assert response.status_code == 404
    assert error_of(response) == {"code": 404, "message": "Endpoint not found"}
    assert requests.get(tsdb.url + "/nope", timeout=TIMEOUT).status_code == 404
    response = requests.get(tsdb.url + "/api/put", timeout=TIMEOUT)
    assert response.status_code == 405
    assert error_of(response) == {"code": 405, "message": "Method not allowed",
                                  "details": "The HTTP method [GET] is not permitted for this endpoint"}
    assert requests.delete(tsdb.url + "/api/query", timeout=TIMEOUT).status_code == 405
    assert tsdb.requests == {"/api/nope": 1, "/nope": 1, "/api/put": 1, "/api/query": 1}


def test_answers_are_gzipped_when_accepted(tsdb):
    response = requests.get(tsdb.url + "/api/version", timeout=TIMEOUT)
    assert response.headers["Content-Encoding"] == "gzip"
    plain = requests.get(tsdb.url + "/api/version", headers={"Accept-Encoding": "identity"}, timeout=TIMEOUT)
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Content-Type"] == "application/json; charset=UTF-8"


# ------------------------------------------------------------------------------------------------
# /api/suggest

def test_suggest_prefix_max_and_types(tsdb):
    names = ["sys.cpu.user", "sys.cpu.system", "sys.mem", "Sys.upper"] + ["m.%02d" % i for i in range(40)]
    tsdb.add_points((name, {"host": "web01", "dc": "eu"}, BASE, 1) for name in names)

    def suggest(**params):
        return requests.get(tsdb.url + "/api/suggest", params=params, timeout=TIMEOUT)

    assert suggest(type="metrics", q="sys.cpu").json() == ["sys.cpu.system", "sys.cpu.user"]
    assert suggest(type="metrics", q="sys").json() == ["sys.cpu.system", "sys.cpu.user", "sys.mem"]  # case-sensitive
    assert suggest(type="metrics", q="m.").json() == ["m.%02d" % i for i in range(25)]  # max defaults to 25
    assert len(suggest(type="metrics", q="m.", max="30").json()) == 30
    assert len(suggest(type="metrics", max="1000").json()) == 44  # no upper cap, empty q is every name
    assert suggest(type="tagk", q="").json() == ["dc", "host"]
    assert suggest(type="tagv", q="web").json() == ["web01"]
    assert requests.post(tsdb.url + "/api/suggest", json={"type": "tagk", "q": "h", "max": 1}, timeout=TIMEOUT).json() == ["host"]
    response = suggest(type="foo")
    assert response.status_code == 400
    assert error_of(response)["message"] == "Invalid 'type' parameter:foo"
    assert error_of(suggest(q="x"))["message"] == "Missing parameter <code>type</code>"
    assert error_of(suggest(type="metrics", max="lots"))["message"] == "Unable to parse 'max' as a number"


# ------------------------------------------------------------------------------------------------
# /api/query

def test_none_aggregator_ms_resolution_inclusive_edges(tsdb):
    offsets = [0, 1, 999, 1000, 1500]
    tsdb.add_points(("sys.cpu", {"host": "a"}, BASE + offset, offset) for offset in offsets)
    tsdb.add_points([("sys.cpu", {"host": "b"}, BASE + 1000, 2.5)])
    response = query(tsdb, start=BASE + 1, end=BASE + 1000, msResolution=True,
                     queries=[{"aggregator": "none", "metric": "sys.cpu"}])
    assert response.status_code == 200
    assert response.json() == [
        {"metric": "sys.cpu", "tags": {"host": "a"}, "aggregateTags": [],
         "dps": {str(BASE + 1): 1, str(BASE + 999): 999, str(BASE + 1000): 1000}},
        {"metric": "sys.cpu", "tags": {"host": "b"}, "aggregateTags": [], "dps": {str(BASE + 1000): 2.5}},
    ]
    assert re.search(r'"%d":1000[,}]' % (BASE + 1000), response.text)  # an int is written as an int


def test_second_resolution_gives_one_key_per_point(tsdb):
    tsdb.add_points(("sys.cpu", {"host": "a"}, BASE + offset, offset) for offset in (0, 250, 999, 1000))
    response = query(tsdb, start=BASE_S, end=BASE_S + 1, queries=[{"aggregator": "none", "metric": "sys.cpu"}])
    pairs = json.loads(response.text, object_pairs_hook=lambda items: items)[0]
    dps = dict(pairs)["dps"]
    # As HttpJsonSerializer: keys in seconds, repeated when a second holds several points ...
    assert dps == [(str(BASE_S), 0), (str(BASE_S), 250), (str(BASE_S), 999), (str(BASE_S + 1), 1000)]
    # ... so a JSON parser keeps the last point of each second.
    assert response.json()[0]["dps"] == {str(BASE_S): 999, str(BASE_S + 1): 1000}


def test_query_time_forms(tsdb):
    tsdb.add_points([("sys.cpu", {"host": "a"}, BASE, 7)])
    for start, end in [(str(BASE_S), str(BASE_S + 1)), (BASE, BASE + 1), ("2017/07/14-02:40:00", "2017/07/14-02:40:01"),
                       ("%d.000" % BASE_S, None)]:
        body = {"start": start, "queries": [{"aggregator": "none", "metric": "sys.cpu"}]}
        if end is not None:
            body["end"] = end
        assert query(tsdb, **body).json()[0]["dps"] == {str(BASE_S): 7}, (start, end)


def test_parse_time_rules():
    now = 2000000000000
    assert parse_time("1500000000", now) == BASE
    assert parse_time("1500000000000", now) == BASE
    assert parse_time(1500000000, now) == BASE
    assert parse_time("1500000000.250", now) == BASE + 250
    assert parse_time("now", now) == now
    assert parse_time("90s-ago", now) == now - 90000
    assert parse_time("1h-ago", now) == now - 3600000
    assert parse_time("2w-ago", now) == now - 14 * 86400000
    assert parse_time("1n-ago", now) == now - 30 * 86400000
    assert parse_time("1y-ago", now) == now - 365 * 86400000
    assert parse_time("250ms-ago", now) == now - 250
    assert parse_time("2017/07/14", now) == BASE - (2 * 3600 + 40 * 60) * 1000
    assert parse_time("2017/07/14 02:40", now) == BASE
    assert parse_time("2017/07/14-02:40:00", now, "Europe/Paris") == BASE - 2 * 3600000
    for bad in ("yesterday", "1x-ago", "0h-ago", "-5", "2017/07/14-02", "1500000000.1234"):
        with pytest.raises(ApiError):
            parse_time(bad, now)


def test_query_errors(tsdb):
    tsdb.add_points([("sys.cpu", {"host": "a"}, BASE, 1)])
    sub = {"aggregator": "none", "metric": "sys.cpu"}
    cases = [
        ({"start": BASE_S, "queries": [{"aggregator": "none", "metric": "nope"}]}, "No such name for 'metrics': 'nope'"),
        ({"start": BASE_S, "queries": [dict(sub, tags={"dc": "x"})]}, "No such name for 'tagk': 'dc'"),
        ({"start": BASE_S, "queries": [dict(sub, tags={"host": "zz"})]}, "No such name for 'tagv': 'zz'"),
        ({"queries": [sub]}, "Missing start time"),
        ({"start": BASE_S, "end": BASE_S, "queries": [sub]}, "End time [%d] must be greater than the start time [%d]" % (BASE, BASE)),
        ({"start": BASE_S, "queries": [dict(sub, aggregator="wat")]}, "No such aggregation function: wat"),
        ({"start": BASE_S, "queries": [dict(sub, downsample="1m-none")]}, "cannot use the NONE aggregator for downsampling"),
        ({"start": "soon", "queries": [sub]}, "Invalid time: soon. For input string: \"soon\""),
    ]
    for body, message in cases:
        response = query(tsdb, **body)
        assert response.status_code == 400, body
        assert error_of(response)["message"] == message
    response = requests.post(tsdb.url + "/api/query", data="{", timeout=TIMEOUT)
    assert (response.status_code, error_of(response)["message"]) == (400, "Unable to parse the given JSON")
    response = get_query(tsdb, m="none:sys.cpu")
    assert error_of(response)["message"] == "Missing parameter <code>start</code>"


def test_known_metric_without_data_in_range(tsdb):
    tsdb.add_points([("sys.cpu", {"host": "a"}, BASE, 1)])
    queries = [{"aggregator": "none", "metric": "sys.cpu"}]
    response = query(tsdb, start=BASE_S + 86400, end=BASE_S + 90000, queries=queries)
    assert (response.status_code, response.json()) == (200, [])
    # Data elsewhere in the hour row the TSD scans: the series comes back with empty dps.
    response = query(tsdb, start=BASE_S + 60, end=BASE_S + 120, queries=queries)
    assert response.json() == [{"metric": "sys.cpu", "tags": {"host": "a"}, "aggregateTags": [], "dps": {}}]


def test_get_query_plain_tags_and_colon_in_tag_value(tsdb):
    tsdb.add_points([("if.octets", {"host": "web01", "port": "eth0:1"}, BASE, 10),
                     ("if.octets", {"host": "web01", "port": "eth1"}, BASE, 20),
                     ("if.octets", {"host": "web02", "port": "eth1"}, BASE, 30)])
    response = get_query(tsdb, start=BASE_S, end=BASE_S + 1, m="none:if.octets{host=web01}")
    assert response.status_code == 200
    assert [(r["tags"]["port"], r["dps"]) for r in response.json()] == [("eth0:1", {str(BASE_S): 10}), ("eth1", {str(BASE_S): 20})]
    response = get_query(tsdb, start=BASE_S, end=BASE_S + 1, ms="true", m="none:if.octets{host=web01|web02,port=eth1}")
    assert [r["dps"] for r in response.json()] == [{str(BASE): 20}, {str(BASE): 30}]
    # The m= expression is split on ':' first: the tag value's colon cuts it and '1}' becomes the metric.
    response = get_query(tsdb, start=BASE_S, m="none:if.octets{port=eth0:1}")
    assert response.status_code == 400
    assert error_of(response)["message"] == "No such name for 'metrics': '1}'"
    response = get_query(tsdb, start=BASE_S, m="none:if.octets{port=a:b:c:d:e}")
    assert error_of(response)["message"] == "Invalid parameter m=none:if.octets{port=a:b:c:d:e} (too many :-separated parts)"
    # POST carries the value whole.
    response = query(tsdb, start=BASE_S, end=BASE_S + 1, queries=[{
        "aggregator": "none", "metric": "if.octets",
        "filters": [{"type": "literal_or", "tagk": "port", "filter": "eth0:1", "groupBy": False}]}])
    assert response.status_code == 200
    assert response.json() == [{"metric": "if.octets", "tags": {"host": "web01", "port": "eth0:1"}, "aggregateTags": [],
                                "dps": {str(BASE_S): 10}}]


def test_filters(tsdb):
    tsdb.add_points((("disk", {"host": host, "dev": dev}, BASE, n)
                     for n, (host, dev) in enumerate([("web01", "sda"), ("web02", "sdb"), ("db01", "sda"), ("WEB03", "sdc")])))

    def hosts(*filters, explicit=False):
        sub = {"aggregator": "none", "metric": "disk", "filters": [dict(zip(("type", "tagk", "filter"), f)) for f in filters]}
        if explicit:
            sub["explicitTags"] = True
        response = query(tsdb, start=BASE_S, end=BASE_S + 1, queries=[sub])
        assert response.status_code == 200, response.text
        return sorted(r["tags"]["host"] for r in response.json())

    assert hosts(("wildcard", "host", "web*")) == ["web01", "web02"]
    assert hosts(("iwildcard", "host", "web*")) == ["WEB03", "web01", "web02"]
    assert hosts(("regexp", "host", "^(web|db)0[12]$")) == ["db01", "web01", "web02"]
    assert hosts(("not_literal_or", "dev", "sda|sdb")) == ["WEB03"]
    assert hosts(("iliteral_or", "host", "web03")) == ["WEB03"]
    assert hosts(("literal_or", "host", "web01|db01"), ("literal_or", "dev", "sda")) == ["db01", "web01"]
    assert hosts(("wildcard", "host", "*"), explicit=True) == []  # explicit tags: every tag key must be filtered
    assert hosts(("wildcard", "host", "*"), ("wildcard", "dev", "*"), explicit=True) == ["WEB03", "db01", "web01", "web02"]


def test_aggregators_group_by_and_downsampling(tsdb):
    tsdb.add_points([("req", {"host": "a", "dc": "eu"}, BASE, 1), ("req", {"host": "b", "dc": "eu"}, BASE, 2),
                     ("req", {"host": "c", "dc": "us"}, BASE, 4), ("req", {"host": "a", "dc": "eu"}, BASE + 60000, 10),
                     ("req", {"host": "c", "dc": "us"}, BASE + 60000, 0.5)])
    window = {"start": BASE_S, "end": BASE_S + 3599}

    def run(**sub):
        response = query(tsdb, queries=[dict({"metric": "req"}, **sub)], **window)
        assert response.status_code == 200, response.text
        return response.json()

    [total] = run(aggregator="sum")
    assert total["tags"] == {} and total["aggregateTags"] == ["dc", "host"]
    assert total["dps"] == {str(BASE_S): 7, str(BASE_S + 60): 10.5}
    assert [(r["tags"], r["dps"]) for r in run(aggregator="sum", tags={"dc": "*"})] == [
        ({"dc": "eu"}, {str(BASE_S): 3, str(BASE_S + 60): 10}), ({"dc": "us", "host": "c"}, {str(BASE_S): 4, str(BASE_S + 60): 0.5})]
    assert run(aggregator="avg", tags={"dc": "eu"})[0]["dps"] == {str(BASE_S): 1, str(BASE_S + 60): 10}  # (1 + 2) / 2 as Java longs
    assert run(aggregator="count")[0]["dps"] == {str(BASE_S): 3, str(BASE_S + 60): 2}
    assert run(aggregator="max", downsample="1m-sum")[0]["dps"] == {str(BASE_S): 4, str(BASE_S + 60): 10.0}
    # A bucket that begins before start (02:00 for 1h, start 02:40) is not answered.
    assert run(aggregator="max", downsample="1h-sum")[0]["dps"] == {}
    assert run(aggregator="sum", downsample="0all-sum")[0]["dps"] == {str(BASE_S): 17.5}
    # none with a downsampler: each series downsampled on its own.
    assert [r["dps"] for r in run(aggregator="none", downsample="2m-sum", tags={"host": "a"})] == [{str(BASE_S): 11}]
    response = query(tsdb, queries=[{"metric": "req", "aggregator": "p99"}], **window)
    assert (response.status_code, error_of(response)["message"]) == (400, "Aggregator 'p99' is not emulated")


def test_all_interval_counts_start_to_end_exclusive_as_doubles(tsdb):
    """0all: one bucket per series at the query's start, holding [start, end) (the Downsampler drops
    stamps >= end); downsampled values are doubles. Each answer's size is recorded."""
    tsdb.add_points([("cnt", {"host": host}, BASE + offset, 5) for host in ("a", "b") for offset in (-1, 0, 1, 999, 1000)])
    response = query(tsdb, start=BASE, end=BASE + 1000, msResolution=True,
                     queries=[{"aggregator": "zimsum", "metric": "cnt", "downsample": "0all-count"}])
    assert response.status_code == 200, response.text
    [total] = response.json()
    assert total["dps"] == {str(BASE): 6.0} and '"%d":6.0' % BASE in response.text
    [raw] = query(tsdb, start=BASE, end=BASE + 1000, msResolution=True,
                  queries=[{"aggregator": "none", "metric": "cnt", "tags": {"host": "a"}}]).json()
    assert sorted(raw["dps"]) == [str(BASE + offset) for offset in (0, 1, 999, 1000)]  # the raw query includes end
    assert tsdb.answer_points == [1, 4]


def test_show_tsuids(tsdb):
    tsdb.add_points([("sys.cpu", {"host": "a"}, BASE, 1)])
    [result] = query(tsdb, start=BASE_S, showTSUIDs=True, queries=[{"aggregator": "none", "metric": "sys.cpu"}]).json()
    assert result["tsuids"] == ["000001000001000001"]


# ------------------------------------------------------------------------------------------------
# /api/put

def test_put_object_and_array(tsdb):
    response = put(tsdb, point(value=1))
    assert (response.status_code, response.content) == (204, b"")
    assert put(tsdb, [point(ts=BASE + 5, value="2.5"), point(ts=BASE_S + 1, value=-3)]).status_code == 204
    assert tsdb.points() == {("sys.cpu", frozenset({("host", "a")}), BASE, 1), ("sys.cpu", frozenset({("host", "a")}), BASE + 5, 2.5),
                             ("sys.cpu", frozenset({("host", "a")}), BASE + 1000, -3)}


def test_put_same_instant_overwrites(tsdb):
    put(tsdb, [point(value=1), point(ts=BASE, value=2)])
    assert tsdb.count() == 1
    assert tsdb.points() == {("sys.cpu", frozenset({("host", "a")}), BASE, 2)}


def test_int64_round_trip_exactly(tsdb):
    big, low = 9007199254740993, -2 ** 63
    assert put(tsdb, [point(value=big), point(ts=BASE_S + 1, value=low), point(ts=BASE_S + 2, value=str(2 ** 63 - 1))]).status_code == 204
    response = query(tsdb, start=BASE_S, end=BASE_S + 2, queries=[{"aggregator": "none", "metric": "sys.cpu"}])
    assert '"%d":9007199254740993' % BASE_S in response.text
    assert response.json()[0]["dps"] == {str(BASE_S): big, str(BASE_S + 1): low, str(BASE_S + 2): 2 ** 63 - 1}
    response = put(tsdb, [point(value=2 ** 63)], "?details")
    assert response.json()["errors"][0]["error"] == "Unable to parse value to a number"


def test_put_errors_summary_details_and_partial_success(tsdb):
    batch = [point(value=1), point(ts=BASE_S + 1, value=2),
             {"metric": "sys.cpu", "timestamp": BASE_S, "value": 1},  # no tags
             point(value="NaN"),
             point(metric="bad metric!"),
             point(ts=0),
             point(metric=""),
             point(**{"k%d" % i: "v" for i in range(9)})]
    response = put(tsdb, batch)
    assert response.status_code == 400
    assert error_of(response) == {"code": 400, "message": "One or more data points had errors",
                                  "details": "Please see the TSD logs or append \"details\" to the put request"}
    assert tsdb.count() == 2  # the valid points are stored all the same
    response = put(tsdb, batch, "?summary")
    assert (response.status_code, response.json()) == (400, {"success": 2, "failed": 6})
    response = put(tsdb, batch, "?details")
    assert response.status_code == 400
    answer = response.json()
    assert (answer["success"], answer["failed"]) == (2, 6)
    assert [e["error"] for e in answer["errors"]] == [
        "Missing tags", "Unable to parse value to a number", "Invalid metric name (\"bad metric!\"): illegal character:  ",
        "Invalid timestamp", "Metric name was empty",
        "Too many tags: 9 maximum allowed: 8, tags: {%s}" % ", ".join("k%d=v" % i for i in range(9))]
    assert answer["errors"][0]["datapoint"] == {"metric": "sys.cpu", "timestamp": BASE_S, "value": "1"}
    response = put(tsdb, [point(value=5)], "?summary")
    assert (response.status_code, response.json()) == (200, {"success": 1, "failed": 0})
    response = put(tsdb, [point(value=5)], "?details")
    assert (response.status_code, response.json()) == (200, {"success": 1, "failed": 0, "errors": []})


def test_put_names_allow_unicode_letters(tsdb):
    assert put(tsdb, point(metric="température.salle_1/a-b", ville="Zürich")).status_code == 204
    response = put(tsdb, point(metric="cpu", host="a:b"), "?details")
    assert response.json()["errors"][0]["error"] == "Invalid tag value (\"a:b\"): illegal character: :"


def test_put_bad_json_discards_the_request(tsdb):
    def send(data):
        return requests.post(tsdb.url + "/api/put", data=data, headers={"Content-Type": "application/json"}, timeout=TIMEOUT)

    cases = [('[{"metric": "sys.cpu", "timestamp": 1500000000, "value": 1, "tags": {"host": "a"}}, {"metric": ',
              "Unable to parse the given JSON"),
             (json.dumps([point(), dict(point(), tags=["host", "a"])]), "Unable to parse the given JSON"),
             (json.dumps([point(), dict(point(), timestamp="soon")]), "Unable to parse the given JSON"),
             ("blah", "The JSON must start as an object or an array"),
             ("[]", "No datapoints found in content"),
             ("", "Missing request content")]
    for data, message in cases:
        response = send(data)
        assert (response.status_code, error_of(response)["message"]) == (400, message), data
    assert tsdb.count() == 0


def test_put_gzip_body(tsdb):
    body = gzip.compress(json.dumps([point(ts=BASE_S + i, value=i) for i in range(200)]).encode())
    response = requests.post(tsdb.url + "/api/put", data=body, timeout=TIMEOUT,
                             headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 204
    assert tsdb.count() == 200


def test_chunked_bodies_are_refused_by_default(tsdb):
    def chunks():
        yield json.dumps(point()).encode()

    response = requests.post(tsdb.url + "/api/put", data=chunks(), timeout=TIMEOUT)
    assert response.status_code == 400
    assert error_of(response)["message"] == "Chunked request not supported."
    # netty hands a body over 8192 bytes in chunks too, whatever the headers say.
    response = put(tsdb, [point(ts=BASE_S + i) for i in range(200)])
    assert (response.status_code, error_of(response)["message"]) == (400, "Chunked request not supported.")
    assert tsdb.count() == 0


def test_chunked_bodies_with_enable_chunked():
    with OpenTSDBEmulator(enable_chunked=True, max_chunk=65536) as tsdb:
        data = json.dumps([point(ts=BASE_S + i) for i in range(200)]).encode()
        assert requests.post(tsdb.url + "/api/put", data=iter([data]), timeout=TIMEOUT).status_code == 204
        assert tsdb.count() == 200
        with pytest.raises(requests.ConnectionError):  # over max_chunk the TSD closes the connection
            requests.post(tsdb.url + "/api/put", data=b" " * 70000 + data, timeout=TIMEOUT)


def test_auto_create_metrics_off():
    with OpenTSDBEmulator(auto_create_metrics=False) as tsdb:
        tsdb.add_points([("known", {"host": "a"}, BASE, 1)])
        response = put(tsdb, [point(metric="known"), point(metric="unknown")], "?details")
        assert [e["error"] for e in response.json()["errors"]] == ["Unknown metric"]


# ------------------------------------------------------------------------------------------------
# Fault injection, connections, concurrency

def test_fault_500_on_second_request_then_ok(tsdb):
    tsdb.inject("/api/put", status=500, nth=2)
    statuses = [put(tsdb, point(ts=BASE_S + i)).status_code for i in range(3)]
    assert statuses == [204, 500, 204]
    assert tsdb.count() == 2  # the failed request was not carried out
    assert tsdb.requests["/api/put"] == 3


def test_fault_error_body_and_retry_after(tsdb):
    tsdb.inject("/api/query", status=429, headers={"Retry-After": "2"}, times=2)
    tsdb.inject("/api/suggest", status=424, body={"error": {"code": 424, "message": "HBase is down"}})
    for attempt in range(2):
        response = get_query(tsdb, start=BASE_S, m="none:x", attempt=attempt)
        assert (response.status_code, response.headers["Retry-After"]) == (429, "2")
        assert error_of(response)["code"] == 429
    assert get_query(tsdb, start=BASE_S, m="none:x").status_code == 400  # back to the real answer
    response = requests.get(tsdb.url + "/api/suggest?type=metrics", timeout=TIMEOUT)
    assert (response.status_code, error_of(response)["message"]) == (424, "HBase is down")


def test_fault_delay(tsdb):
    tsdb.inject("/api/version", delay=0.3)
    began = time.monotonic()
    assert requests.get(tsdb.url + "/api/version", timeout=TIMEOUT).status_code == 200
    assert time.monotonic() - began >= 0.3
    tsdb.inject("/api/version", delay=0.5)
    with pytest.raises(requests.Timeout):
        requests.get(tsdb.url + "/api/version", timeout=0.1)


def test_fault_drop_connection(tsdb):
    tsdb.inject("/api/put", drop=True)
    with pytest.raises(requests.ConnectionError):
        put(tsdb, point())
    assert tsdb.count() == 0
    tsdb.inject("/api/put", drop=True, process=True)  # carried out, then the answer is lost
    with pytest.raises(requests.ConnectionError):
        put(tsdb, point())
    assert tsdb.count() == 1
    assert put(tsdb, point(value=2)).status_code == 204


def test_faults_match_their_path_only(tsdb):
    tsdb.inject("/api/put", status=503)
    assert requests.get(tsdb.url + "/api/version", timeout=TIMEOUT).status_code == 200
    tsdb.inject("*", status=502)
    assert put(tsdb, point()).status_code == 503
    assert requests.get(tsdb.url + "/api/version", timeout=TIMEOUT).status_code == 502
    tsdb.inject("/api/put", status=500)
    tsdb.clear_faults()
    assert put(tsdb, point()).status_code == 204
    with pytest.raises(ValueError):
        tsdb.inject("/api/put")


def test_keep_alive_reuses_one_connection(tsdb):
    before = tsdb.connections
    with requests.Session() as session:
        for i in range(10):
            assert session.post(tsdb.url + "/api/put", json=point(ts=BASE_S + i), timeout=TIMEOUT).status_code == 204
            assert session.get(tsdb.url + "/api/version", timeout=TIMEOUT).status_code == 200
    assert tsdb.connections == before + 1


def test_keep_alive_answers_do_not_wait_for_delayed_acks(tsdb):
    """A TSD sets TCP_NODELAY and writes an answer at once: 50 small keep-alive queries take ~1 ms each,
    not the ~40 ms of a client's delayed ACK after a head written apart from its body."""
    tsdb.add_points([("ka", {"host": "a"}, BASE + i, i) for i in range(10)])
    body = json.dumps({"start": BASE, "end": BASE + 1000, "msResolution": True,
                       "queries": [{"aggregator": "none", "metric": "ka"}]})
    connection = http.client.HTTPConnection(tsdb.host, tsdb.port, timeout=TIMEOUT)
    try:
        began = time.monotonic()
        for _attempt in range(50):
            connection.request("POST", "/api/query", body=body, headers={"Content-Type": "application/json"})
            assert len(json.loads(connection.getresponse().read())[0]["dps"]) == 10
        elapsed = time.monotonic() - began
    finally:
        connection.close()
    assert elapsed < 1.0, elapsed


def test_concurrent_puts(tsdb):
    def writer(host):
        with requests.Session() as session:
            for batch in range(10):
                points = [point(ts=BASE_S + batch * 10 + i, host=host) for i in range(10)]
                assert session.post(tsdb.url + "/api/put", json=points, timeout=TIMEOUT).status_code == 204

    threads = [threading.Thread(target=writer, args=("h%d" % n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tsdb.count() == 800
    assert tsdb.requests["/api/put"] == 80


def test_bulk_load_and_large_query(tsdb):
    began = time.monotonic()
    tsdb.add_points(("big", {"host": "h%d" % (i % 2)}, BASE + i * 10, i if i % 2 else i / 4) for i in range(200000))
    loaded = time.monotonic()
    response = query(tsdb, start=BASE, end=BASE + 2000000, msResolution=True,
                     queries=[{"aggregator": "none", "metric": "big", "tags": {"host": "h0"}}])
    answered = time.monotonic()
    assert len(response.json()[0]["dps"]) == 100000
    assert loaded - began < 5 and answered - loaded < 3, (loaded - began, answered - loaded)


def test_command_line(tmp_path):
    script = os.path.join(ROOT, "tests", "support", "otsdb_emulator.py")
    with subprocess.Popen([sys.executable, script, "--port", "0"], stdout=subprocess.PIPE, text=True, cwd=str(tmp_path)) as proc:
        try:
            line = proc.stdout.readline()
            url = line.split()[3]
            assert requests.get(url + "/api/version", timeout=TIMEOUT).json()["version"] == "2.4.1"
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
