# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one SQL statement splitter: statement boundaries whatever the read size, quotes, escapes, comments,
conditional comments, DELIMITER blocks, bytes that are not UTF-8; and what a statement says (INSERT rows,
CREATE, DEFINER)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.sql import dumpfile


def split(data, chunk=dumpfile.CHUNK):
    splitter = dumpfile.Splitter(io.BytesIO(data), "dump.sql", chunk=chunk)
    statements = list(splitter)
    # every byte is in some statement's prefix, text or suffix, or in the tail
    assert b"".join(s.prefix + s.sql + s.suffix for s in statements) + splitter.tail == data
    return statements, splitter


def texts(data, chunk=dumpfile.CHUNK):
    return [s.sql for s in split(data, chunk)[0]]


# -- generated dumps --------------------------------------------------------------------------------------------------
def _quoted(quote, content, doubled):
    out = bytearray(quote)
    for byte in content:
        if byte == 92 and quote != b"`":
            out += b"\\\\"
        elif bytes((byte,)) == quote:
            out += quote + quote if doubled or quote == b"`" else b"\\" + quote
        else:
            out.append(byte)
    return bytes(out + quote)


WORD = st.text(alphabet="abcXYZ019_,()=.+*<>", min_size=1, max_size=8).map(lambda t: t.encode())
ANY_BYTES = st.binary(max_size=24)
COMMENT_TEXT = st.text(alphabet="ab ;'\"`*x", max_size=10).map(lambda t: t.encode())
TOKEN = st.one_of(
    WORD,
    st.builds(_quoted, st.just(b"'"), ANY_BYTES, st.booleans()),
    st.builds(_quoted, st.just(b'"'), ANY_BYTES, st.booleans()),
    st.builds(_quoted, st.just(b"`"), ANY_BYTES.map(lambda b: b.replace(b"`", b"")), st.booleans()),
    COMMENT_TEXT.map(lambda t: b"/* " + t.replace(b"*", b"") + b" */"),
    WORD.map(lambda w: b"/*!40101 " + w + b" */"),
    COMMENT_TEXT.map(lambda t: b"-- " + t + b"\n"),
    COMMENT_TEXT.map(lambda t: b"# " + t + b"\n"),
    st.just(b"-5"), st.just(b"a/b"), st.just(b"1--2"),
)
STATEMENT = st.tuples(WORD, st.lists(TOKEN, max_size=6), WORD).map(lambda t: b" ".join([t[0]] + t[1] + [t[2]]))
GAP = st.lists(st.sampled_from([b"\n", b" ", b"\t", b"-- note; 'x\n", b"/* a; 'b */", b"# c;\n", b"\r\n"]),
               max_size=3).map(b"".join)


@st.composite
def dumps(draw):
    """(dump bytes, expected statements): runs of statements with ';', some in a DELIMITER ;; block whose statements
    hold single ';' (a routine's body)."""
    data, expected = bytearray(), []
    for _block in range(draw(st.integers(1, 3))):
        in_block = draw(st.booleans())
        if in_block:
            data += b"DELIMITER ;;\n"
        for _i in range(draw(st.integers(0, 4))):
            statement = draw(STATEMENT)
            if in_block and draw(st.booleans()):
                statement = b"BEGIN x; y; " + statement
            data += draw(GAP) + statement + (b";;" if in_block else b";") + draw(GAP)
            expected.append(statement)
        if in_block:
            data += b"\nDELIMITER ;\n"
    return bytes(data), expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dumps(), st.integers(1, 64))
def test_statements_are_the_same_whatever_the_read_size(case, chunk):
    data, expected = case
    assert texts(data, chunk) == expected
    assert texts(data) == expected


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 17))
def test_any_bytes_split_the_same_whatever_the_read_size_or_fail_the_same(data, chunk):
    try:
        whole = texts(data)
    except FerryError as exc:
        with pytest.raises(FerryError) as again:
            texts(data, chunk)
        assert str(again.value) == str(exc)
        return
    assert texts(data, chunk) == whole


# the exact rule: a quote ends the string unless an odd run of backslashes comes just before it (no doubled quotes)
_EXACT = {quote: re.compile(quote + b"[^" + quote + b"\\\\]*(?:\\\\[\\s\\S][^" + quote + b"\\\\]*)*" + quote)
          for quote in (b"'", b'"')}


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([b"'", b'"']), st.lists(st.sampled_from([b"\\", b"\\", b"'", b'"', b"a", b"),("]), max_size=30))
def test_the_quick_string_pattern_ends_where_the_exact_rule_does_or_leaves_it(quote, parts):
    """Strings where escapes are told by looking behind: never a wrong end; no answer only after 4 or more
    backslashes (the exact pattern, or the splitter's slow path, takes those)."""
    data = quote + b"".join(parts) + quote + b" "
    quick = re.compile(dumpfile._string(quote)).match(data)
    exact = _EXACT[quote].match(data)
    if quick:
        assert exact and quick.end() == exact.end()
    elif exact:
        assert b"\\\\\\\\" + quote in data[:exact.end()]
    for chunk in (1, 3, 64):  # and the splitter, whichever path it takes, cuts the same statements
        statement = b"INSERT INTO t VALUES (" + data + b");"
        if exact and exact.end() == len(data) - 1:
            assert texts(statement + b"SELECT 1;", chunk) == [statement[:-1], b"SELECT 1"]


# -- the client's rules ----------------------------------------------------------------------------------------------
def test_quotes_escapes_and_doubled_quotes_hide_the_delimiter():
    data = b"INSERT INTO t VALUES ('a;b','it''s;','\\';',\"x;\\\"\",`c;``d`);\nSELECT 1;"
    assert texts(data, 1) == [data.split(b";\n", maxsplit=1)[0], b"SELECT 1"]


def test_binary_and_latin1_bytes_are_kept_exactly():
    blob = bytes(range(256)).replace(b"\\", b"\\\\").replace(b"'", b"\\'")
    data = b"SET NAMES latin1;\nINSERT INTO t VALUES ('caf\xe9','" + blob + b"');\n"
    statements = texts(data, 7)
    assert statements[1] == b"INSERT INTO t VALUES ('caf\xe9','" + blob + b"')"


def test_comments_between_statements_go_to_the_prefix_and_inside_ones_stay():
    data = b"-- header; 'x\n/* a; */\n# b;\nSELECT 1 /* c; */ , 2 -- d;\n , 3;\n-- the end"
    statements, splitter = split(data, 3)
    assert [s.sql for s in statements] == [b"SELECT 1 /* c; */ , 2 -- d;\n , 3"]
    assert statements[0].prefix == b"-- header; 'x\n/* a; */\n# b;\n"
    assert splitter.tail == b"\n-- the end"


def test_conditional_comments_are_code_and_their_semicolons_end_statements():
    data = b"/*!40101 SET NAMES utf8mb4 */;\n/*!50003 CREATE*/ /*!50017 DEFINER=`u`@`h`*/ /*!50003 TRIGGER x */;"
    assert texts(data, 2) == [b"/*!40101 SET NAMES utf8mb4 */",
                              b"/*!50003 CREATE*/ /*!50017 DEFINER=`u`@`h`*/ /*!50003 TRIGGER x */"]


def test_two_dashes_without_a_space_are_no_comment():
    assert texts(b"SELECT 1--2;SELECT 3;") == [b"SELECT 1--2", b"SELECT 3"]
    assert texts(b"SELECT 1 -- x;\n;") == [b"SELECT 1 -- x;"]  # the comment ends at the line end


def test_delimiter_blocks_as_mysqldump_writes_triggers_and_routines():
    data = (b"DELIMITER ;;\n/*!50003 CREATE*/ /*!50003 TRIGGER t AFTER INSERT ON x FOR EACH ROW BEGIN\n"
            b"  INSERT INTO log VALUES ('a;;b'); END */;;\nDELIMITER ;\nDELIMITER $$\nCREATE PROCEDURE p() BEGIN "
            b"SELECT 1; END$$\ndelimiter ;\nSELECT 2;")
    statements, splitter = split(data, 5)
    assert [s.sql[:24] for s in statements] == [b"/*!50003 CREATE*/ /*!500", b"CREATE PROCEDURE p() BEG", b"SELECT 2"]
    assert statements[0].sql.endswith(b"END */") and statements[1].sql.endswith(b"END")
    assert splitter.delimiter == b";"


def test_the_last_statement_without_a_delimiter_is_a_statement_too():
    assert texts(b"SELECT 1;\nSELECT 2\n") == [b"SELECT 1", b"SELECT 2"]


def test_empty_statements_and_an_empty_dump():
    assert texts(b";;\n; SELECT 1;;") == [b"SELECT 1"]
    statements, splitter = split(b"")
    assert statements == [] and splitter.statements == 0 and splitter.tail == b""


def test_mariadb_sandbox_line_is_a_client_command():
    data = b"/*M!999999\\- enable the sandbox mode */ \n/*!40101 SET NAMES utf8mb4 */;\n"
    statements, _splitter = split(data, 4)
    assert [s.sql for s in statements] == [b"/*!40101 SET NAMES utf8mb4 */"]


def test_offsets_numbers_and_the_largest_statement():
    data = b"SELECT 1;\n  SELECT 'xxxxxxxxxx';\r\n"
    statements, splitter = split(data, 3)
    assert [(s.number, s.offset) for s in statements] == [(1, 0), (2, 12)]
    assert splitter.largest == len(b"SELECT 'xxxxxxxxxx'") and splitter.statements == 2
    assert statements[1].suffix == b";"


def test_a_huge_string_across_many_reads_is_read_once():
    class Counting(io.BytesIO):
        reads = 0

        def read(self, size=-1):
            Counting.reads += 1
            return io.BytesIO.read(self, size)

    body = b"x\\'" * 200000
    data = b"INSERT INTO t VALUES ('" + body + b"');"
    splitter = dumpfile.Splitter(Counting(data), "big", chunk=4096)
    assert [s.sql for s in splitter] == [data[:-1]]
    assert Counting.reads <= len(data) // 4096 + 3


@pytest.mark.parametrize("data, message", [
    (b"INSERT INTO t VALUES ('abc);\n", "ends inside a quoted string or name that starts at byte 22"),
    (b"SELECT 1; /* open", "ends inside a comment"),
    (b"SELECT `a;", "ends inside a quoted string or name"),
    (b"DELIMITER\n", None),
    (b"DELIMITER '\nSELECT 1'", "unsupported delimiter"),
])
def test_truncated_or_broken_dumps_fail_clearly(data, message):
    if message is None:  # "DELIMITER" alone is a statement like any other
        assert texts(data) == [b"DELIMITER"]
        return
    with pytest.raises(FerryError, match=message):
        texts(data, 3)


def test_shown_is_the_first_200_characters_readable():
    text = dumpfile.shown(b"INSERT '\xff\x00" + b"a" * 400)
    assert text.startswith("INSERT '\\xff\\x00") and text.endswith("...") and len(text) == 203


# -- what a statement is ---------------------------------------------------------------------------------------------
def test_insert_rows_count_groups_outside_strings():
    assert dumpfile.insert_rows(b"INSERT INTO `t` VALUES (1,'a),(b'),(2,'x\\'),('),(3,NULL)") == ("t", 3)
    assert dumpfile.insert_rows(b"INSERT INTO `a``b` (`x`, `y`) VALUES (1,2)") == ("a`b", 1)
    assert dumpfile.insert_rows(b"REPLACE INTO db.t VALUES (1),\n(2)") == ("t", 2)
    assert dumpfile.insert_rows(b"INSERT INTO t SELECT * FROM u") is None
    assert dumpfile.insert_rows_table(b"INSERT IGNORE INTO `t` VALUES (1)") == "t"


@pytest.mark.parametrize("sql, made", [
    (b"CREATE TABLE `event_summary` (\n `a` int)", ("table", "event_summary")),
    (b"CREATE TABLE IF NOT EXISTS t (a int)", ("table", "t")),
    (b"/*!50003 CREATE*/ /*!50017 DEFINER=`zenoss`@`localhost`*/ /*!50003 TRIGGER trg AFTER INSERT",
     ("trigger", "trg")),
    (b"/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`%` SQL SECURITY DEFINER */\n"
     b"/*!50001 VIEW `v` AS select 1 */", ("view", "v")),
    (b"CREATE DEFINER=`u`@`h` PROCEDURE `p`(IN x INT)\nBEGIN END", ("procedure", "p")),
    (b"CREATE DEFINER='u'@'h' FUNCTION f() RETURNS int RETURN 1", ("function", "f")),
    (b"/*!50106 CREATE*/ /*!50117 DEFINER=`u`@`h`*/ /*!50106 EVENT `e` ON SCHEDULE", ("event", "e")),
    (b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `zenoss_zep` /*!40100 DEFAULT CHARACTER SET utf8 */",
     ("database", "zenoss_zep")),
    (b"DROP TABLE IF EXISTS `t`", None),
    (b"INSERT INTO t VALUES ('CREATE TABLE x')", None),
])
def test_created(sql, made):
    assert dumpfile.created(sql) == made


def test_definers_are_found_stripped_and_replaced_in_the_head_only():
    trigger = (b"/*!50003 CREATE*/ /*!50017 DEFINER=`zenoss`@`localhost`*/ /*!50003 TRIGGER t BEFORE INSERT ON x "
               b"FOR EACH ROW SET @a = 'DEFINER=`x`@`y`' */")
    found = dumpfile.definer_of(trigger)
    assert found[1:] == ("zenoss", "localhost")
    assert dumpfile.rewrite_definer(trigger, None) == trigger.replace(b"DEFINER=`zenoss`@`localhost`", b"")
    assert dumpfile.rewrite_definer(trigger, ("app", "%")) == trigger.replace(
        b"DEFINER=`zenoss`@`localhost`", b"DEFINER='app'@'%'")
    view = b"/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013 DEFINER=`r`@`h` SQL SECURITY DEFINER */ /*!50001 VIEW v"
    assert dumpfile.rewrite_definer(view, None) == view.replace(b"DEFINER=`r`@`h`", b"")
    routine = b"CREATE DEFINER=CURRENT_USER PROCEDURE p() BEGIN END"
    assert dumpfile.definer_of(routine)[1] is None and dumpfile.rewrite_definer(routine, None) is routine
    table = b"CREATE TABLE t (DEFINER int)"
    assert dumpfile.definer_of(table) is None


def test_zenbackup_stripping_expression_is_matched_on_its_own_examples():
    # the line zenbackup's strip_definer removes a comment from, and what it leaves
    line = b"/*!50003 CREATE*/ /*!50017 DEFINER=`zenoss`@`localhost`*/ /*!50003 TRIGGER `t` AFTER INSERT ON `x`"
    assert b"DEFINER" not in dumpfile.rewrite_definer(line, None)


def test_views_naming_the_source_database_are_renamed_outside_strings():
    view = (b"/*!50001 VIEW `v` AS select `zenoss_zep`.`t`.`a` AS `a` from `zenoss_zep` . `t` where `b` = "
            b"'`zenoss_zep`.x' */")
    renamed = dumpfile.rename_database(view, "zenoss_zep", "zep2")
    assert renamed == (b"/*!50001 VIEW `v` AS select `zep2`.`t`.`a` AS `a` from `zep2` . `t` where `b` = "
                       b"'`zenoss_zep`.x' */")
    assert dumpfile.rename_database(b"select 1", "a", "b") == b"select 1"


def test_the_dump_header_and_use_name_the_source_database():
    header = b"-- MySQL dump 10.13\n--\n-- Host: localhost    Database: zenoss_zep\n"
    assert dumpfile.dump_database(header) == "zenoss_zep"
    assert dumpfile.dump_database(b"SELECT 1") is None
    assert dumpfile.used_database(b"USE `zodb`") == "zodb"
    assert dumpfile.used_database(b"USER_DEFINED") is None
