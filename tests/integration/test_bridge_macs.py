"""The bridge template's MAC addresses: a capture with known addresses replayed by `flowd --read`, exported
as version9 and IPFIX with a bridge template, decoded by tshark: each flow carries its first frame's
addresses (Ethernet: both; Linux cooked SLL: the source only)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest

from tests.flowdecode import TSHARK, tshark, tshark_problems, write_udp_pcap

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")]

CONFIG = """
services:
  flow-monitoring:
    version9:
      template:
        l2-v9: {{bridge-template: true}}
    version-ipfix:
      template:
        l2-ipfix: {{bridge-template: true}}
forwarding-options:
  sampling:
    input: {{rate: 1}}
    family:
      inet:
        output:
          flow-server:
            127.0.0.1: {{port: {v9}, version9: {{template: l2-v9}}}}
            127.0.0.2: {{port: {ipfix}, version-ipfix: {{template: l2-ipfix}}}}
      inet6:
        output:
          flow-server:
            127.0.0.1: {{port: {v9}, version9: {{template: l2-v9}}}}
            127.0.0.2: {{port: {ipfix}, version-ipfix: {{template: l2-ipfix}}}}
"""

FLOWS = 24  # flow i: i + 1 packets of 100 + i bytes of payload, so (packets, octets) names the flow
LATER = bytes.fromhex("0e0000000000")  # the addresses of every frame after a flow's first: never exported


def mac(kind: int, i: int) -> bytes:
    return bytes((2, 0, kind, 0, i >> 8, i & 0xFF))


def ip_packet(i: int) -> bytes:
    udp = dpkt.udp.UDP(sport=1000 + i, dport=53, data=bytes(100 + i))
    udp.ulen = len(udp)
    if i % 3 == 0:  # every third flow IPv6
        ip6 = dpkt.ip6.IP6(src=bytes.fromhex("20010db8") + bytes(11) + bytes((i,)),
                           dst=bytes.fromhex("20010db8ffff") + bytes(10), nxt=17, hlim=64, data=udp)
        ip6.plen = len(udp)
        return bytes(ip6)
    return bytes(dpkt.ip.IP(src=bytes((10, 0, 0, i)), dst=bytes((192, 0, 2, 1)), p=17, ttl=64, data=udp))


def frame(link: str, i: int, first: bool) -> bytes:
    dst, src = (mac(1, i), mac(2, i)) if first else (LATER, LATER)
    ethertype = 0x86DD if i % 3 == 0 else 0x0800
    if link == "ethernet":
        return dst + src + struct.pack("!H", ethertype) + ip_packet(i)
    # Linux cooked: packet type (0 to us, 4 outgoing), ARPHRD_ETHER, address length 6, address, protocol
    return struct.pack("!HHH8sH", 4 * (i % 2), 1, 6, src + bytes(2), ethertype) + ip_packet(i)


def write(path: Path, link: str) -> dict[tuple[int, int], tuple[str, str]]:
    """The capture, and per flow (packets, octets) -> (destination, source) MAC as tshark prints them."""
    want = {}
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB if link == "ethernet" else 113)
        t = 1_700_000_000.0
        for round_ in range(FLOWS):
            for i in range(round_, FLOWS):  # flow i sends in rounds 0..i: interleaved
                t += 0.001
                writer.writepkt(frame(link, i, first=round_ == 0), ts=t)
    for i in range(FLOWS):
        dst = mac(1, i) if link == "ethernet" else bytes(6)
        size = len(ip_packet(i))
        want[(i + 1, (i + 1) * size)] = (dst.hex(":"), mac(2, i).hex(":"))
    return want


def exported(tmp: Path, capture: Path, workers: int) -> dict[str, list[bytes]]:
    sockets = {"v9": socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
               "ipfix": socket.socket(socket.AF_INET, socket.SOCK_DGRAM)}
    sockets["v9"].bind(("127.0.0.1", 0))
    sockets["ipfix"].bind(("127.0.0.2", 0))
    try:
        config = tmp / "flowd.yaml"
        config.write_text(CONFIG.format(v9=sockets["v9"].getsockname()[1], ipfix=sockets["ipfix"].getsockname()[1]))
        done = subprocess.run([sys.executable, "-m", "flowd", "--read", str(capture), "--config", str(config),
                               "--workers", str(workers)],
                              cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        out: dict[str, list[bytes]] = {}
        for name, sock in sockets.items():
            sock.setblocking(False)
            out[name] = []
            while True:
                try:
                    out[name].append(sock.recv(65536))
                except BlockingIOError:
                    break
        return out
    finally:
        for sock in sockets.values():
            sock.close()


def tshark_flows(pcap: Path, port: int) -> dict[tuple[int, int], tuple[str, str]]:
    fields = ("cflow.packets", "cflow.octets", "cflow.dstmac", "cflow.srcmac")
    out = tshark("-r", str(pcap), "-d", f"udp.port=={port},cflow", "-T", "fields", "-E", "separator=;",
                 "-E", "occurrence=a", *(a for f in fields for a in ("-e", f)))
    got: dict[tuple[int, int], tuple[str, str]] = {}
    for line in out.splitlines():
        columns = [c.split(",") if c else [] for c in line.split(";")]
        for packets, octets, dst, src in zip(*columns, strict=True):
            assert (int(packets), int(octets)) not in got
            got[(int(packets), int(octets))] = (dst, src)
    return got


@pytest.mark.parametrize(("link", "workers"), [("ethernet", 1), ("sll", 1), ("ethernet", 2)])
def test_every_flow_carries_its_first_frames_macs(tmp_path: Path, link: str, workers: int) -> None:
    capture = tmp_path / f"{link}.pcap"
    want = write(capture, link)
    datagrams = exported(tmp_path, capture, workers)  # 2: the rows reach the shards through shared memory
    for name, port in (("v9", 2055), ("ipfix", 4739)):
        pcap = tmp_path / f"{name}.pcap"
        write_udp_pcap(pcap, datagrams[name], dport=port)
        assert tshark_problems(pcap, [port]) == ""
        assert tshark_flows(pcap, port) == want, name
