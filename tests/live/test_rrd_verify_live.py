"""rrd_verify against a real VictoriaMetrics (vm-default: no deduplication, 1-month retention): a Zenoss perf tree
sent by rrd_to_tsdb verifies clean; sent a second time, every series shows doubled, named; a series another host
never sent shows missing. The tenant id is unique to each run: the server keeps what earlier runs sent."""
import time
import uuid

from ansible_collections.ferry.migrate.plugins.modules import rrd_to_tsdb, rrd_verify, tsdb_restore
from tools.gen_rrd_tree import build_tree


def params(module, **values):
    base = dict((name, option.get("default")) for name, option in module.argument_spec().items())
    base.update(values)
    return base


def test_rrd_verify_on_victoriametrics(servers, tmp_path):
    tenant = "ferry-verify-%s" % uuid.uuid4().hex[:12]
    tree = build_tree(str(tmp_path / "perf"), "zenoss", files=8, days=3, end=int(time.time()) - 86400)
    converted = rrd_to_tsdb.run(params(rrd_to_tsdb, src=tree["root"], dest=str(tmp_path / "p"), tenant_id=tenant,
                                       state_dir=str(tmp_path / "c"), url=servers["FERRY_VM_DEFAULT_OPENTSDB_URL"],
                                       kind="victoriametrics", workers=1), False)
    assert converted["sent"]["points"] == converted["counts"]["points"] > 0
    args = params(rrd_verify, src=tree["root"], tenant_id=tenant, url=servers["FERRY_VM_DEFAULT_URL"],
                  kind="victoriametrics", state_dir=str(tmp_path / "s"))
    clean = rrd_verify.run(args, False)
    assert "msg" not in clean, clean["differences"]
    assert clean["counts"]["found_points"] == clean["counts"]["expected_points"] == converted["counts"]["points"]
    assert clean["counts"]["values_checked"] >= 2 * clean["counts"]["series"] > 0
    assert rrd_verify.run(args, False)["decision"] == "skip"

    # only half the tree verified: its shards' series all there, each once
    half = rrd_verify.run(dict(args, shard_index=1, shard_count=2, state_dir=str(tmp_path / "s1")), False)
    assert "msg" not in half and 0 < half["counts"]["found_points"] < clean["counts"]["found_points"]

    # the same batches sent again (another ledger): vm-default keeps both copies, rrd_verify names each series
    again = tsdb_restore.run(params(tsdb_restore, src=str(tmp_path / "p"), url=servers["FERRY_VM_DEFAULT_OPENTSDB_URL"],
                                    kind="victoriametrics", verify=False, state_dir=str(tmp_path / "again")), False)
    assert again["counts"]["points"] == converted["counts"]["points"]
    doubled = rrd_verify.run(dict(args, force=True), False)
    assert doubled["msg"].startswith("verification failed")
    assert doubled["counts"]["found_points"] == 2 * doubled["counts"]["expected_points"]
    assert any("stored twice" in text for text in doubled["differences"])
    assert any("the target holds 2 points" in text for text in doubled["differences"])
    assert "Devices/" in doubled["differences"][0] and tenant in doubled["differences"][0]

    # another tenant: nothing of it on the target, every series missing
    other = rrd_verify.run(dict(args, tenant_id=tenant + "-never-sent", state_dir=str(tmp_path / "o"), sample=0.0),
                           False)
    assert other["counts"]["missing_series"] == other["counts"]["series"] > 0
    assert other["counts"]["found_points"] == 0
