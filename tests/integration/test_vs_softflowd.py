"""Against a peer: per-flow IPv4 totals from flowd equal softflowd's on real captures.

Both export cflowd v5 to a real nfcapd each. flowd ends a TCP flow at FIN/RST and softflowd keeps it
(and it merges both directions into one cache entry, exporting one record per direction), so records
are compared after summing per (addresses, ports, protocol): the packet totals of every conversation
direction must agree exactly, and so must the bytes once softflowd's one deliberate difference is put
back: it counts a frame's length after the link header, so the padding of minimum-size Ethernet frames
(a 41-byte IP packet in a 60-byte frame) is counted too, where flowd counts the IP total length; and
softflowd does not decode PPPoE sessions (it counts them as non-IP), so flowd's PPPoE traffic, read
independently with dpkt, is taken out of flowd's side. docs/accuracy.md explains each difference.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest
from collectors import HAVE_NFDUMP, start_nfcapd

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "pcaps" / "real"
CAPTURES = (
    "ndpi/default/pcap/443-firefox.pcap",
    "ndpi/default/pcap/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
    "ndpi/default/pcap/bittorrent.pcap",
    "ndpi/default/pcap/dns.pcap",
    "ndpi/default/pcap/netflix.pcap",
    "ndpi/default/pcap/quic.pcap",
    "ndpi/default/pcap/teams.pcap",
    "ndpi/default/pcap/whatsappfiles.pcap",
    "ndpi/default/pcap/dns_fragmented.pcap",
    "ndpi/default/pcap/syslog.pcap",  # PPPoE behind a VLAN tag
)
TIMEOUT = "86400"  # longer than any capture: neither side splits a flow by time

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not HAVE_NFDUMP or shutil.which("softflowd") is None,
                       reason="softflowd, nfcapd and nfdump are needed"),
    pytest.mark.skipif(not REAL.is_dir(), reason="../shared/pcaps is absent"),
]


def frames(capture: Path) -> Iterator[bytes]:
    with open(capture, "rb") as fh:
        try:
            reader = dpkt.pcap.Reader(fh)
        except ValueError:
            fh.seek(0)
            reader = dpkt.pcapng.Reader(fh)
        for _, frame in reader:
            yield frame


def conversation(ip: dpkt.ip.IP) -> tuple[object, ...]:
    l4 = ip.data
    ports = (l4.sport, l4.dport) if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)) else (0, 0)
    return (socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst), *ports, ip.p)


def ethernet_padding(capture: Path) -> Counter[tuple[object, ...]]:
    """Bytes of link-layer padding per direction, read independently with dpkt."""
    pad: Counter[tuple[object, ...]] = Counter()
    for frame in frames(capture):
        eth = dpkt.ethernet.Ethernet(frame)
        ip = eth.data
        if not isinstance(ip, dpkt.ip.IP):
            continue
        link = 14 + 4 * len(getattr(eth, "vlan_tags", []) or [])
        extra = len(frame) - link - ip.len
        if extra > 0:
            pad[conversation(ip) + ("bytes",)] += extra
    return pad


def pppoe_traffic(capture: Path) -> Counter[tuple[object, ...]]:
    """Packets and IP bytes of the IPv4 packets carried in PPPoE sessions, per direction (dpkt)."""
    carried: Counter[tuple[object, ...]] = Counter()
    for frame in frames(capture):
        session = dpkt.ethernet.Ethernet(frame).data
        if isinstance(session, dpkt.pppoe.PPPoE) and isinstance(getattr(session.data, "data", None), dpkt.ip.IP):
            ip = session.data.data
            carried[conversation(ip) + ("packets",)] += 1
            carried[conversation(ip) + ("bytes",)] += ip.len
    return carried


def totals(flows: list[dict[str, object]]) -> Counter[tuple[object, ...]]:
    out: Counter[tuple[object, ...]] = Counter()
    for f in flows:
        key = (f["src"], f["dst"], f["sport"], f["dport"], f["proto"])
        out[key + ("packets",)] += f["packets"]  # type: ignore[operator]
        out[key + ("bytes",)] += f["bytes"]  # type: ignore[operator]
    return out


@pytest.mark.parametrize("name", [c for c in CAPTURES if (REAL / c).exists()])
def test_per_flow_totals_equal_softflowd(name: str, tmp_path: Path) -> None:
    capture = REAL / name
    with start_nfcapd(tmp_path / "flowd") as ours:
        done = subprocess.run(
            [sys.executable, "-m", "flowd", "--read", str(capture), "--flow-server", f"127.0.0.1:{ours.port}",
             "--source-address", "127.0.0.1", "--active-timeout", "1800", "--inactive-timeout", "1800"],
            cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        ours.wait_idle()
    with start_nfcapd(tmp_path / "softflowd") as theirs:
        timeouts = [a for t in ("tcp", "tcp.rst", "tcp.fin", "udp", "icmp", "general", "maxlife")
                    for a in ("-t", f"{t}={TIMEOUT}")]
        peer = subprocess.run(
            ["softflowd", "-r", str(capture), "-c", "none", "-p", str(tmp_path / "sfd.pid"), "-v", "5",
             "-m", "1000000", "-n", f"127.0.0.1:{theirs.port}", *timeouts],
            capture_output=True, text=True, timeout=120)
        assert peer.returncode == 0, peer.stderr
        theirs.wait_idle()
    mine, peers = totals(ours.flows()), totals(theirs.flows())
    assert peers, "softflowd exported nothing"
    assert mine + ethernet_padding(capture) == peers + pppoe_traffic(capture)
