"""Configuration mode against a real daemon, typed in a real terminal: the seed's stanza typed with `set` and
committed exports like the seed's file; rollback, commit confirmed, refused values, the exclusive lock;
`show firewall` against a ground-truth capture."""

from __future__ import annotations

import json
import re
import select
import socket
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest
from ptyshell import PtyShell
from seed_set import NEARLY_EMPTY, seed_set

from flowd.config.loader import load_config
from flowd.testing.synth import write_capture
from flowd.testing.truth import GroundTruth, SynthSpec

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from test_daemon import Daemon, wait_for  # noqa: E402

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("synth") / "truth.pcap"
    truth = write_capture(SynthSpec(packets=3000, flows=300, seed=5, duration=2.0), str(path))
    return path, truth


class Collector:
    """A UDP socket on 127.0.0.1 that decodes what arrives as NetFlow v5 (dpkt)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[dpkt.netflow.Netflow5] = []

    def pending(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])

    def drain(self, first: float = 5.0, limit: float = 10.0, quiet: float = 1.5) -> None:
        """Read datagrams until none came for `quiet` s (`first` s for the first one), for at most `limit` s.

        `quiet` is longer than the exporter's gathering delay (records wait up to 1 s to fill a datagram).
        """
        deadline = time.monotonic() + limit
        wait = first
        while time.monotonic() < deadline and select.select([self.sock], [], [], wait)[0]:
            self.datagrams.append(dpkt.netflow.Netflow5(self.sock.recv(65535)))
            wait = quiet

    def keys(self) -> set[tuple[str, str, int, int, int]]:
        return {(socket.inet_ntoa(r.src_addr.to_bytes(4, "big")), socket.inet_ntoa(r.dst_addr.to_bytes(4, "big")),
                 r.src_port, r.dst_port, r.ip_proto) for d in self.datagrams for r in d.data}

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


RUNNING: list[Daemon] = []


@pytest.fixture(autouse=True)
def stop_daemons() -> Iterator[None]:
    """Every daemon a test started is stopped, whatever the test's outcome."""
    yield
    while RUNNING:
        d = RUNNING.pop()
        if d.proc.poll() is None:
            d.stop()


def start(tmp: Path, text: str, *args: str, name: str = "flowd.conf") -> Daemon:
    (tmp / name).write_text(text)
    RUNNING.append(Daemon(tmp, "--config", str(tmp / name), "--source-address", "127.0.0.1", *args))
    return RUNNING[-1]


def type_config(shell: PtyShell, lines: str) -> None:
    for line in lines.strip().splitlines():
        shell.send(line + "\r")
        shell.config_prompt()


def enter(shell: PtyShell, mode: str = "") -> str:
    shell.prompt()
    shell.send(f"configure {mode}".strip() + "\r")
    return shell.config_prompt()


def test_seed_typed_with_set_exports_like_the_seed_file(tmp_path: Path, capture: tuple[Path, GroundTruth],
                                                        collector: Collector) -> None:
    pcap, _ = capture
    d = start(tmp_path, NEARLY_EMPTY, "--replay", str(pcap), "--replay-loop")
    shell = PtyShell(Path(d.socket), tmp_path)
    try:
        banner = enter(shell)
        assert "Entering configuration mode" in banner and "[edit]" in banner
        type_config(shell, seed_set(port=collector.port))
        shell.send("show | compare | no-more\r")
        compared = shell.config_prompt()
        assert "\n[edit]\n+   interfaces {\n" in compared and "\n+   firewall {\n" in compared
        assert re.search(r"\n\+ {23}count counter1;\n", compared)
        assert not collector.pending()  # nothing configured to export until the commit
        shell.send("commit comment \"the seed's stanza\"\r")
        assert "commit complete" in shell.config_prompt()
        shell.send("exit\r")
        assert "Exiting configuration mode" in shell.prompt()
    finally:
        shell.close()
    # The file now means exactly what the seed's file means (with the same flow server)...
    seed_text = (REPO / "etc" / "seed-sampling.conf").read_text().replace("10.60.2.1", "127.0.0.1") \
        .replace("port 2055", f"port {collector.port}")
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "seed.conf").write_text(seed_text)
    typed, seed = load_config(str(tmp_path / "flowd.conf")), load_config(str(tmp_path / "seed" / "seed.conf"))
    for field in ("sampling", "families", "filters", "inputs", "templates", "interface_map"):
        assert getattr(typed, field) == getattr(seed, field), field
    # ... and the flows it exports live are those a daemon started from the seed's file exports.
    other = Collector()
    try:
        e = Daemon(tmp_path / "seed", "--config", str(tmp_path / "seed" / "seed.conf"), "--source-address",
                   "127.0.0.1", "--flow-server", f"127.0.0.1:{other.port}", "--replay", str(pcap),
                   "--replay-speed", "max")
        RUNNING.append(e)
        wait_for(lambda: "finished after" in e.log.read_text())
        assert e.cli("clear services accounting flow").returncode == 0
        other.drain()
        want = other.keys()
    finally:
        other.close()
    assert want and {(x.version, x.engine_type, x.engine_id) for x in other.datagrams} == {(5, 55, 5)}
    # The typed daemon replays the same capture in a loop: every flow it exports is one of those, and
    # within a few loops it has exported all of them, from the same engine.
    deadline = time.monotonic() + 60
    while not want <= collector.keys() and time.monotonic() < deadline:
        assert d.cli("clear services accounting flow").returncode == 0
        collector.drain(first=1.0, limit=3.0)
    assert collector.keys() == want
    assert {(x.version, x.engine_type, x.engine_id) for x in collector.datagrams} == {(5, 55, 5)}


def show_configuration(d: Daemon) -> str:
    done = d.cli("show configuration")
    assert done.returncode == 0, done.stderr
    return done.stdout


def seed(tmp_path: Path, pcap: Path, *args: str) -> Daemon:
    """A daemon on the seed's file (flow server 127.0.0.1:2055, nobody listening); the capture stands for ge-2/3/0."""
    text = (REPO / "etc" / "seed-sampling.conf").read_text().replace("10.60.2.1", "127.0.0.1")
    return start(tmp_path, text, "--replay", str(pcap), "--replay-speed", "max", *args)


def test_rollback_one_and_commit_returns_to_the_previous_state(tmp_path: Path, capture: tuple[Path, GroundTruth]
                                                               ) -> None:
    d = seed(tmp_path, capture[0])
    before = show_configuration(d)
    done = d.cli("configure; set forwarding-options sampling input rate 10; commit")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "commit complete"
    assert "rate 10;" in show_configuration(d)
    shell = PtyShell(Path(d.socket), tmp_path)
    try:
        enter(shell)
        shell.send("rollback 1\r")
        assert "load complete" in shell.config_prompt()
        shell.send("show | compare\r")
        assert re.search(r"\[edit forwarding-options sampling input\]\n-   rate 10;\n\+   rate 1;\n",
                         shell.config_prompt())
        shell.send("commit\r")
        assert "commit complete" in shell.config_prompt()
        shell.send("run show system commit\r")
        history = shell.config_prompt()
        assert re.search(r"0   \S+ \S+ UTC by \w+ via cli\n1   \S+ \S+ UTC by \w+ via cli\n2   \S+ \S+ UTC by flowd "
                         r"via cli\n    configuration at start", history), history
        shell.send("quit\r")
        shell.prompt()
    finally:
        shell.close()
    assert show_configuration(d) == before
    uptime = d.cli("show system uptime").stdout
    assert re.search(r"^Last configured: .* ago\) by \w+$", uptime, re.MULTILINE), uptime
    assert re.search(r"^Time Source:  (LOCAL|NTP) CLOCK$", uptime, re.MULTILINE), uptime
    d.stop()


def test_commit_confirmed_reverts_by_itself(tmp_path: Path, capture: tuple[Path, GroundTruth]) -> None:
    # One `commit confirmed` minute is 0.2 s on this daemon (--confirm-unit), so the test waits well under a second.
    d = seed(tmp_path, capture[0], "--confirm-unit", "0.2")
    before = show_configuration(d)
    done = d.cli("configure; set forwarding-options sampling input rate 7; commit confirmed 1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == [
        "commit confirmed will be automatically rolled back in 1 minutes unless confirmed", "commit complete"]
    wait_for(lambda: "automatic rollback complete" in d.log.read_text(), timeout=30)
    assert show_configuration(d) == before
    history = d.cli("show system commit").stdout.splitlines()
    assert history[1] == "    automatic rollback: commit confirmed was not confirmed"
    d.stop()


def test_bad_values_are_refused_and_the_running_configuration_stays(tmp_path: Path,
                                                                   capture: tuple[Path, GroundTruth]) -> None:
    d = seed(tmp_path, capture[0])
    before, text = show_configuration(d), (tmp_path / "flowd.conf").read_text()
    shell = PtyShell(Path(d.socket), tmp_path)
    try:
        enter(shell)
        shell.send("set forwarding-options sampling input rate 0\r")
        out = shell.config_prompt()
        caret = next(ln for ln in out.splitlines() if ln.strip() == "^")
        line = next(ln for ln in out.splitlines() if "input rate 0" in ln)
        assert caret.index("^") == line.index("rate 0") + len("rate ")
        assert "error: value out of range: 0 is not within range (1..16000000)" in out
        shell.send("set forwarding-options samplin bogus\r")
        assert "syntax error." in shell.config_prompt()
        type_config(shell, "set forwarding-options family inet6 output flow-server 127.0.0.1 port 2055\n"
                           "set forwarding-options family inet6 output flow-server 127.0.0.1 version 5")
        shell.send("commit check\r")
        out = shell.config_prompt()
        assert "[edit forwarding-options family inet6 output flow-server 127.0.0.1]\n  'version'\n    version 5 " \
               "carries IPv4 flows only; family inet6 needs version9 or version-ipfix\n" \
               "error: configuration check-out failed" in out
        shell.send("commit\r")
        assert "error: configuration check-out failed" in shell.config_prompt()
        shell.send("exit\r")
        assert "The configuration has been changed but not committed" in \
            shell.expect(r"Exit with uncommitted changes\? \[yes,no\] \(yes\)")
        shell.send("yes\r")
        shell.prompt()
    finally:
        shell.close()
    assert show_configuration(d) == before and (tmp_path / "flowd.conf").read_text() == text
    done = d.cli("configure; set forwarding-options sampling input rate 0; commit")
    assert done.returncode == 1 and "error: value out of range" in done.stderr
    d.stop()


def test_configure_exclusive_locks_out_a_second_session(tmp_path: Path) -> None:
    d = start(tmp_path, NEARLY_EMPTY)
    first, second = PtyShell(Path(d.socket), tmp_path), PtyShell(Path(d.socket), tmp_path)
    try:
        assert "warning: uncommitted changes will be discarded on exit" in enter(first, "exclusive")
        second.prompt()
        second.send("configure\r")
        out = second.expect(r"exclusive \[edit\]")
        assert re.search(r"error: configuration database locked by:\n  \w+ terminal flowcli \(pid \d+\) on since "
                         r"\S+ \S+ UTC\n      exclusive \[edit\]", out), out
        first.send("set forwarding-options sampling input rate 5\r")
        first.config_prompt()
        first.send("exit configuration-mode\r")
        assert "Discard uncommitted changes?" in first.expect(r"\(yes\)")
        first.send("\r")
        first.prompt()
        second.send("configure\r")
        assert "[edit]" in second.config_prompt()
        second.send("show | compare\r")
        assert "rate 5" not in second.config_prompt()  # the exclusive session's changes went with it
    finally:
        first.close()
        second.close()
    d.stop()


FIREWALL = """\
interfaces { ge-0/0/0 { unit 0 { family inet { filter { input probe; } } } } }
forwarding-options { sampling { input { rate 1; } family inet { output { flow-server 127.0.0.1 { port PORT; } } } } }
firewall { family inet { filter probe {
  term t { from { protocol tcp; } then { count tcp_pk; sample; accept; } }
  term u { from { protocol udp; } then { count udp_pk; accept; } }
  term rest { then { count other; accept; } }
} } }
"""


def test_show_firewall_counts_what_the_terms_matched(tmp_path: Path, capture: tuple[Path, GroundTruth],
                                                     collector: Collector) -> None:
    pcap, truth = capture
    want: dict[str, list[int]] = {"tcp_pk": [0, 0], "udp_pk": [0, 0], "other": [0, 0]}
    texts = truth.packets.keys.texts()
    for key, length in zip(truth.packets.key.tolist(), truth.packets.length.tolist()):
        src, _, _, _, proto, _ = texts[key]
        if ":" not in src:  # the filter is family inet's; IPv6 packets never reach it
            counts = want[{6: "tcp_pk", 17: "udp_pk"}.get(proto, "other")]
            counts[0] += 1
            counts[1] += length
    d = start(tmp_path, FIREWALL.replace("PORT", str(collector.port)), "--replay", str(pcap), "--replay-speed", "max")
    wait_for(lambda: "finished after" in d.log.read_text())
    done = d.cli("show firewall")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == ["", "Filter: probe", "Counters:"]
    rows = {line.split()[0]: [int(line.split()[2]), int(line.split()[1])] for line in done.stdout.splitlines()[4:]}
    assert rows == want
    xml = ET.fromstring("\n".join(d.cli("show firewall filter probe | display xml").stdout.splitlines()))
    counters = {c.findtext("counter-name"): [int(c.findtext("packet-count") or -1), int(c.findtext("byte-count") or -1)]
                for c in xml.iter("counter")}
    assert counters == want
    data = json.loads(d.cli("show firewall filter probe counter udp_pk | display json").stdout)
    counter = data["firewall-information"][0]["filter-information"][0]["counter"]
    assert [c["packet-count"][0]["data"] for c in counter] == [str(want["udp_pk"][0])]
    assert d.cli("clear firewall filter probe counter tcp_pk").returncode == 0
    after = d.cli("show firewall").stdout
    assert re.search(r"^tcp_pk\s+0\s+0$", after, re.MULTILINE) and f"{want['udp_pk'][0]}" in after
    missing = d.cli("show firewall filter nope")
    assert missing.returncode == 1 and missing.stderr.strip() == "error: filter nope is not configured"
    d.stop()
