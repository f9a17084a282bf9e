"""The configuration database: sessions and locks, commit in the file's own syntax, rollback, commit confirmed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from fakes import FakeClock
from seed_set import NEARLY_EMPTY

from flowd.config import loader as config
from flowd.config.rollback import RollbackStore
from flowd.config.schema import Config
from flowd.control.database import (
    Database,
    DatabaseError,
    open_database,
    run_confirm_timer,
)
from flowd.syntax import junos
from flowd.syntax.schema import StatementError

REPO = Path(__file__).resolve().parents[2]
SEED = (REPO / "etc" / "seed-sampling.conf").read_text().replace("10.60.2.1", "127.0.0.1")


class Daemon:
    """What the database needs of the daemon: validate text as a load would, and re-read the file on apply."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.running = config.load_config(str(path))
        self.fail = False

    def check(self, text: str) -> Config:
        return config.parse_config(text, source="candidate", syntax="junos")

    def apply(self, user: str) -> bool:
        if self.fail:
            return False
        self.running = config.load_config(str(self.path))
        return True


def make(tmp_path: Path, name: str = "flowd.conf", text: str = "") -> tuple[Database, Daemon]:
    path = tmp_path / name
    path.write_text(text)
    daemon = Daemon(path)
    db = open_database(str(path), daemon.check, daemon.apply, active=daemon.running.tree,
                       rollback_dir=str(tmp_path / "rollback"))
    return db, daemon


def type_lines(db: Database, sid: int, lines: str) -> None:
    for line in lines.strip().splitlines():
        verb, *words = line.split()
        (db.set if verb == "set" else db.delete)(sid, (), words)


def test_commit_writes_curly_keeps_the_header_and_applies(tmp_path: Path) -> None:
    db, daemon = make(tmp_path, text="# flowd on probe-1\n# managed by hand\n" + NEARLY_EMPTY)
    db.enter(1, "alice", 100, "shared", 0.0)
    type_lines(db, 1, "set forwarding-options sampling input rate 100\n"
                      "set forwarding-options family inet output flow-server 127.0.0.1 port 2055")
    assert db.commit(1, "alice", 10.0, comment="first") == ["commit complete"]
    text = daemon.path.read_text()
    assert text.startswith("# flowd on probe-1\n# managed by hand\n")
    assert daemon.running.sampling.rate == 100
    assert [s.port for s in daemon.running.families["inet"].flow_servers] == [2055]
    assert [(c["index"], c["user"], c["comment"]) for c in db.history()] == [
        (0, "alice", "first"), (1, "flowd", "configuration at start")]
    assert db.last_commit == (10.0, "alice")


def test_commit_writes_yaml_for_a_yaml_file(tmp_path: Path) -> None:
    db, daemon = make(tmp_path, "flowd.yaml", "# example\nforwarding-options:\n  sampling:\n    input: {rate: 5}\n")
    db.enter(1, "alice", 100, "shared", 0.0)
    type_lines(db, 1, "set forwarding-options sampling input rate 7")
    db.commit(1, "alice", 1.0)
    text = daemon.path.read_text()
    assert text.startswith("# example\n")
    assert yaml.safe_load(text) == {"forwarding-options": {"sampling": {"input": {"rate": 7}}}}
    assert daemon.running.sampling.rate == 7


def test_commit_check_reports_in_the_junos_layout_and_changes_nothing(tmp_path: Path) -> None:
    db, daemon = make(tmp_path, text=SEED)
    before = daemon.path.read_text()
    db.enter(1, "alice", 100, "shared", 0.0)
    type_lines(db, 1, "set forwarding-options family inet6 output flow-server 127.0.0.1 port 2055\n"
                      "set forwarding-options family inet6 output flow-server 127.0.0.1 version 5")
    with pytest.raises(DatabaseError) as info:
        db.commit(1, "alice", 1.0, check=True)
    assert str(info.value).splitlines() == [
        "[edit forwarding-options family inet6 output flow-server 127.0.0.1]",
        "  'version'",
        "    version 5 carries IPv4 flows only; family inet6 needs version9 or version-ipfix",
        "error: configuration check-out failed",
    ]
    with pytest.raises(DatabaseError):
        db.commit(1, "alice", 1.0)
    assert daemon.path.read_text() == before and len(db.store) == 0


def test_a_bad_value_is_refused_at_set(tmp_path: Path) -> None:
    db, _ = make(tmp_path, text=SEED)
    db.enter(1, "alice", 100, "shared", 0.0)
    with pytest.raises(StatementError) as info:
        db.set(1, ("forwarding-options", "sampling", "input"), ["rate", "0"])
    assert (info.value.word, info.value.message) == (1, "error: value out of range: 0 is not within range "
                                                        "(1..16000000)")
    assert not db.changed(1)


def test_rollback_one_and_commit_returns_to_the_previous_state(tmp_path: Path) -> None:
    db, daemon = make(tmp_path, text=SEED)
    start = junos.to_curly(db.active)
    db.enter(1, "alice", 100, "shared", 0.0)
    type_lines(db, 1, "set forwarding-options sampling input rate 10")
    db.commit(1, "alice", 1.0)
    assert daemon.running.sampling.rate == 10
    db.rollback(1, 1)
    assert db.compare(1, ()) == ["[edit forwarding-options sampling input]", "-   rate 10;", "+   rate 1;"]
    db.commit(1, "alice", 2.0)
    assert junos.to_curly(db.active) == start and daemon.running.sampling.rate == 1
    assert db.compare(1, (), rollback=1) == ["[edit forwarding-options sampling input]", "-   rate 10;",
                                             "+   rate 1;"]


def test_exclusive_locks_out_the_others(tmp_path: Path) -> None:
    db, _ = make(tmp_path, text=SEED)
    db.enter(1, "alice", 100, "exclusive", 50.0)
    with pytest.raises(DatabaseError) as info:
        db.enter(2, "bob", 200, "shared", 60.0)
    assert str(info.value).splitlines()[0] == "configuration database locked by:"
    assert "alice terminal flowcli (pid 100)" in str(info.value)
    type_lines(db, 1, "set forwarding-options sampling input rate 3")
    db.leave(1)  # uncommitted changes of an exclusive session are dropped
    assert db.enter(2, "bob", 200, "shared", 60.0) == []
    assert not db.changed(2)


def test_shared_sessions_see_each_other_and_private_is_its_own(tmp_path: Path) -> None:
    db, _ = make(tmp_path, text=SEED)
    db.enter(1, "alice", 100, "shared", 0.0)
    type_lines(db, 1, "set forwarding-options sampling input rate 3")
    lines = db.enter(2, "bob", 200, "shared", 0.0)
    assert lines[0] == "Users currently editing the configuration:" and lines[-1] == \
        "The configuration has been changed but not committed"
    assert db.changed(2)
    db.leave(2)
    with pytest.raises(DatabaseError, match="shared configuration database modified"):
        db.enter(3, "carol", 300, "private", 0.0)


def test_private_commit_refused_after_another_commit(tmp_path: Path) -> None:
    db, _ = make(tmp_path, text=SEED)
    db.enter(1, "alice", 100, "private", 0.0)
    db.enter(2, "bob", 200, "private", 0.0)
    type_lines(db, 1, "set forwarding-options sampling input rate 3")
    type_lines(db, 2, "set forwarding-options sampling input rate 4")
    db.commit(1, "alice", 1.0)
    with pytest.raises(DatabaseError, match="changed by another commit"):
        db.commit(2, "bob", 2.0)


def test_commit_fails_cleanly_when_the_daemon_cannot_apply(tmp_path: Path) -> None:
    db, daemon = make(tmp_path, text=SEED)
    before = daemon.path.read_text()
    db.enter(1, "alice", 100, "shared", 0.0)
    type_lines(db, 1, "set forwarding-options sampling input rate 3")
    daemon.fail = True
    with pytest.raises(DatabaseError, match="configuration commit failed"):
        db.commit(1, "alice", 1.0)
    assert daemon.path.read_text() == before
    assert db.changed(1)


def test_commit_confirmed_rolls_back_on_the_daemon_clock(tmp_path: Path) -> None:
    async def run() -> None:
        db, daemon = make(tmp_path, text=SEED)
        clock = FakeClock()
        timer = asyncio.ensure_future(run_confirm_timer(db, clock))
        await asyncio.sleep(0)
        db.enter(1, "alice", 100, "shared", clock.time())
        type_lines(db, 1, "set forwarding-options sampling input rate 9")
        assert db.commit(1, "alice", clock.time(), confirmed=2) == [
            "commit confirmed will be automatically rolled back in 2 minutes unless confirmed", "commit complete"]
        assert daemon.running.sampling.rate == 9
        clock.advance(119)
        await asyncio.sleep(0)
        assert daemon.running.sampling.rate == 9
        clock.advance(2)
        for _ in range(5):
            await asyncio.sleep(0)
        assert daemon.running.sampling.rate == 1
        assert db.history()[0]["comment"] == "automatic rollback: commit confirmed was not confirmed"
        # A commit within the time confirms it.
        type_lines(db, 1, "set forwarding-options sampling input rate 8")
        db.commit(1, "alice", clock.time(), confirmed=1)
        db.commit(1, "alice", clock.time())
        clock.advance(120)
        for _ in range(5):
            await asyncio.sleep(0)
        assert daemon.running.sampling.rate == 8
        timer.cancel()

    asyncio.run(run())


def test_load_override_merge_and_set_lines(tmp_path: Path) -> None:
    db, _ = make(tmp_path, text=SEED)
    db.enter(1, "alice", 100, "shared", 0.0)
    db.load(1, "merge", "forwarding-options { sampling { input { rate 5; } } }")
    input_ = ("forwarding-options", "sampling", "input")
    assert db.show(1, input_) == (input_, {"rate": 5})
    db.load(1, "override", "forwarding-options { sampling { input { rate 6; } } }")
    assert db.show(1, ()) == ((), {"forwarding-options": {"sampling": {"input": {"rate": 6}}}})
    db.load(1, "merge", "set forwarding-options sampling input run-length 2\n")
    assert db.show(1, input_) == (input_, {"rate": 6, "run-length": 2})
    # One statement shows itself, at its hierarchy (`show forwarding-options sampling input rate`: `rate 6;`).
    assert db.show(1, (), ["forw", "samp", "input", "rate"]) == (input_, {"rate": 6})
    assert db.show(1, input_, ["max-packets-per-second"]) == (input_, {})
    with pytest.raises(DatabaseError, match="line 1: syntax error"):
        db.load(1, "merge", "set forwarding-options bogus 1\n")


def test_embedded_default_has_no_file_to_commit_to(tmp_path: Path) -> None:
    daemon_cfg = config.load_config(None)
    db = Database(None, "yaml", dict(daemon_cfg.tree), RollbackStore(tmp_path),
                  lambda text: config.parse_config(text, source="c", syntax="junos"), lambda user: True)
    db.enter(1, "alice", 100, "shared", 0.0)
    assert db.commit(1, "alice", 0.0, check=True) == ["configuration check succeeds"]
    with pytest.raises(DatabaseError, match="embedded default"):
        db.commit(1, "alice", 0.0)
