"""core.common: model-file patterns (prefix_matches), dest checks and recorded outputs."""

import os

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    check_dest_file,
    output_unchanged,
    prefix_matches,
)


def touch(root, *names):
    for name in names:
        path = os.path.join(str(root), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(name)


def test_a_final_star_matches_any_end_of_the_last_name(tmp_path):
    touch(tmp_path, "u/tm/m1.zip", "u/tm/m1-extra.json", "u/tm/m10/weights.bin", "u/tm/m2.zip", "u/tm/x/m1.zip")
    assert prefix_matches(str(tmp_path), "u/tm/m1*") == ["u/tm/m1-extra.json", "u/tm/m1.zip", "u/tm/m10"]


def test_data_holding_glob_characters_is_literal(tmp_path):
    # an id or owner made of data must never select another item's files
    touch(tmp_path, "u/tm/a[b].zip", "u/tm/ab.zip", "u/tm/a?c.zip", "u/tm/axc.zip", "u/tm/*.zip", "u/tm/q.zip",
          "o*/tm/z.zip", "other/tm/z.zip")
    assert prefix_matches(str(tmp_path), "u/tm/a[b]*") == ["u/tm/a[b].zip"]
    assert prefix_matches(str(tmp_path), "u/tm/a?c*") == ["u/tm/a?c.zip"]
    assert prefix_matches(str(tmp_path), "u/tm/**") == ["u/tm/*.zip"]
    assert prefix_matches(str(tmp_path), "o*/tm/z.zip") == ["o*/tm/z.zip"]


def test_without_a_star_the_path_itself_and_a_root_with_glob_characters(tmp_path):
    root = tmp_path / "data[1]"
    touch(root, "u/s.zip", "u/s.zip.bak", "u/\nodd name*")
    assert prefix_matches(str(root), "u/s.zip") == ["u/s.zip"]
    assert prefix_matches(str(root), "u/nothing*") == []
    assert prefix_matches(str(root), "u/\nodd*") == ["u/\nodd name*"]


def test_check_dest_file_and_output_unchanged(tmp_path):
    check_dest_file(str(tmp_path / "a" / "b" / "x.zip"))  # missing directories are made by the run
    with pytest.raises(FerryError, match="is a directory"):
        check_dest_file(str(tmp_path))
    touch(tmp_path, "file")
    with pytest.raises(FerryError, match="cannot be made: .*file is not a directory"):
        check_dest_file(str(tmp_path / "file" / "x.zip"))
    info = os.stat(str(tmp_path / "file"))
    recorded = {"size": info.st_size, "mtime_ns": info.st_mtime_ns}
    assert output_unchanged(str(tmp_path / "file"), recorded)
    assert not output_unchanged(str(tmp_path / "gone"), recorded) and not output_unchanged(None, recorded)
    os.utime(str(tmp_path / "file"), ns=(1, 1))
    assert not output_unchanged(str(tmp_path / "file"), recorded)
