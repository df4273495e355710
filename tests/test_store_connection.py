"""The store's connection (gputab.store.connection): sqlite-utils' semantics for what it does on sqlite3."""

from __future__ import annotations

import sqlite3

import pytest

from gputab.store.connection import Connection, unique_keys


@pytest.fixture
def db(tmp_path):
    c = Connection(sqlite3.connect(str(tmp_path / "c.db")))
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    yield c
    c.close()


def _other(tmp_path) -> list[tuple]:
    """The rows of t as another connection sees them (committed only)."""
    other = sqlite3.connect(str(tmp_path / "c.db"))
    try:
        return other.execute("SELECT id, v FROM t ORDER BY id").fetchall()
    finally:
        other.close()


def test_execute_commits_a_write_made_outside_a_transaction(db, tmp_path):
    db.execute("INSERT INTO t (v) VALUES (?)", ["a"])
    assert not db.conn.in_transaction
    assert _other(tmp_path) == [(1, "a")]


def test_a_failed_write_leaves_no_transaction_open(db, tmp_path):
    db.execute("INSERT INTO t (id, v) VALUES (1, 'a')")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO t (id, v) VALUES (1, 'b')")
    assert not db.conn.in_transaction


def test_atomic_commits_together_and_rolls_back_together(db, tmp_path):
    with db.atomic():
        db.execute("INSERT INTO t (v) VALUES ('a')")
        assert _other(tmp_path) == []  # not committed inside the block
        db.execute("INSERT INTO t (v) VALUES ('b')")
    assert _other(tmp_path) == [(1, "a"), (2, "b")]
    with pytest.raises(RuntimeError), db.atomic():
        db.execute("INSERT INTO t (v) VALUES ('c')")
        raise RuntimeError
    assert _other(tmp_path) == [(1, "a"), (2, "b")] and not db.conn.in_transaction


def test_a_nested_atomic_rolls_back_only_its_own_part(db, tmp_path):
    with db.atomic():
        db.execute("INSERT INTO t (v) VALUES ('outer')")
        with pytest.raises(ValueError), db.atomic():
            db.execute("INSERT INTO t (v) VALUES ('inner')")
            raise ValueError
    assert [v for _, v in _other(tmp_path)] == ["outer"]


def test_query_gives_dicts_and_refuses_statements_without_rows(db):
    db.execute("INSERT INTO t (v) VALUES ('a')")
    assert list(db.query("SELECT a.id, b.id, a.v FROM t a JOIN t b ON a.id = b.id")) == [{"id": 1, "id_2": 1, "v": "a"}]
    assert list(db.query("SELECT v FROM t WHERE id = ?", [2])) == []
    with pytest.raises(ValueError):
        db.query("UPDATE t SET v = 'b' WHERE id = 99")


def test_unique_keys_as_sqlite_utils_names_them():
    from sqlite_utils.db import dedupe_keys

    for names in (["a", "b"], ["id", "id"], ["id", "id", "id_2"], ["x", "x", "x", "x_2", "x_3"]):
        assert unique_keys(list(names)) == dedupe_keys(names)


def test_table_exists_and_the_rest_of_sqlite_utils_on_the_same_connection(db, tmp_path):
    assert db["t"].exists() and not db["nope"].exists()
    db["t"].insert({"id": 5, "v": "via sqlite-utils"})  # handed to sqlite-utils' Table
    assert "t" in db.table_names()
    assert _other(tmp_path) == [(5, "via sqlite-utils")]


def test_private_and_unset_names_are_not_looked_up_in_sqlite_utils(db):
    import copy

    with pytest.raises(AttributeError):
        _ = db._nothing
    bare = Connection.__new__(Connection)  # as copy and pickle make one: no __init__, no recursion
    with pytest.raises(AttributeError):
        _ = bare._full
    assert copy.copy(db).conn is db.conn
