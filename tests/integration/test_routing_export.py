"""`flowd --read` with a prefix file: AS numbers, masks and next hops in v5 / IPFIX records collected by
nfcapd (nfdump's columns), v8 aggregates on a second server of the same output, and the local dump."""

from __future__ import annotations

import ipaddress
import socket
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from collectors import HAVE_NFDUMP, start_nfcapd

from flowd.testing.synth import GroundTruth, SynthSpec, write_capture

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed")]

ROUTES = [  # prefix, origin AS, next hop: nested prefixes over the synthetic traffic's address space
    ("198.18.0.0/15", 64500, None),
    ("198.18.0.0/16", 64501, "192.0.2.1"),
    ("198.19.128.0/17", 4200000001, "192.0.2.2"),
    ("2001:db8::/32", 64600, "2001:db8:ffff::1"),
    ("2001:db8:1:8000::/49", 64601, None),
]

CONFIG = """
forwarding-options:
  sampling:
    input: {{rate: 1}}
    family:
      inet:
        output:
          flow-server:
            127.0.0.1: {{port: {v5}, version: 5, local-dump: true}}
            127.0.0.2: {{port: {v8}, version: 8, aggregation: {{protocol-port: true}}, local-dump: true}}
          flow-active-timeout: 60
          flow-inactive-timeout: 15
      inet6:
        output:
          flow-server:
            127.0.0.1: {{port: {v6}, version-ipfix: true}}
          flow-active-timeout: 60
          flow-inactive-timeout: 15
flowd:
  routing:
    prefix-file:
      {routes}: {{format: flowd}}
    local-dump: {dump}
"""


def best(address: str) -> tuple[int, int, str]:
    """(origin AS, mask, next hop) by brute force over ROUTES."""
    addr = ipaddress.ip_address(address)
    found = (0, 0, "0.0.0.0" if addr.version == 4 else "::")
    length = -1
    for prefix, asn, hop in ROUTES:
        net = ipaddress.ip_network(prefix)
        if addr.version == net.version and addr in net and net.prefixlen > length:
            length = net.prefixlen
            found = (asn, net.prefixlen, hop or ("0.0.0.0" if addr.version == 4 else "::"))
    return found


def test_routes_reach_the_collectors(tmp_path: Path) -> None:
    truth: GroundTruth = write_capture(SynthSpec(packets=20_000, flows=2_000, seed=5, duration=120.0),
                                       str(tmp_path / "t.pcap"))
    routes = tmp_path / "routes.txt"
    routes.write_text("".join(f"{p} {a} {h or ''}\n" for p, a, h in ROUTES))
    dump = tmp_path / "dump" / "cflowd"
    v8 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v8.bind(("127.0.0.2", 0))
    v8.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    with v8, start_nfcapd(tmp_path / "v4") as c4, start_nfcapd(tmp_path / "v6") as c6:
        cfg = tmp_path / "flowd.yaml"
        cfg.write_text(CONFIG.format(v5=c4.port, v8=v8.getsockname()[1], v6=c6.port, routes=routes, dump=dump))
        done = subprocess.run([sys.executable, "-m", "flowd", "--read", str(tmp_path / "t.pcap"), "--config",
                               str(cfg)], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        c4.wait_idle()
        c6.wait_idle()
        v8.setblocking(False)
        datagrams = []
        while True:
            try:
                datagrams.append(v8.recv(65536))
            except BlockingIOError:
                break
    flows = c4.flows() + c6.flows()
    assert len(flows) == len(truth.flows)

    def as16(asn: int, v4: bool) -> int:
        return 23456 if v4 and asn > 65535 else asn  # v5 carries 2-byte AS numbers

    got = Counter()
    for f in flows:
        rec = f["nfdump"]
        v4 = "src4_addr" in rec
        hop = rec.get("ip4_next_hop" if v4 else "ip6_next_hop", "0.0.0.0" if v4 else "::")
        masks = (rec["src_mask"], rec["dst_mask"]) if not v4 else ()  # nfcapd 1.7 keeps no v5 masks:
        got[(f["src"], f["dst"], f["sport"], f["dport"], rec["src_as"], rec["dst_as"], *masks, hop)] += 1
    want = Counter()
    for t in truth.flows:
        (sas, smask, _), (das, dmask, hop) = best(t.src), best(t.dst)
        v4 = ":" not in t.src
        masks = (smask, dmask) if not v4 else ()  # tests/routing/test_v5_routes.py checks them with dpkt
        want[(t.src, t.dst, t.sport, t.dport, as16(sas, v4), as16(das, v4), *masks, hop)] += 1
    assert got == want
    assert sum(1 for k in want if k[4] == 64501) and sum(1 for k in want if k[5] == 23456)  # both kinds present
    assert sum(1 for k in want if k[5] == 64601)  # and IPv6 routes

    # v8 protocol-port aggregates: flows, packets and bytes per (protocol, ports) of the IPv4 truth
    agg: Counter[tuple[int, int, int]] = Counter()
    sums: dict[tuple[int, int, int], list[int]] = {}
    for d in datagrams:
        version, count = struct.unpack_from("!HH", d)
        assert version == 8 and d[22] == 2 and d[23] == 2 and len(d) == 28 + 28 * count
        for i in range(count):
            fl, pk, by, _, _, proto, _, _, sp, dp = struct.unpack_from("!IIIIIBBHHH", d, 28 + 28 * i)
            s = sums.setdefault((proto, sp, dp), [0, 0, 0])
            s[0] += fl
            s[1] += pk
            s[2] += by
    for t in truth.flows:
        if ":" not in t.src:
            w = sums.setdefault(("want", t.proto, t.sport, t.dport), [0, 0, 0])  # type: ignore[arg-type]
            w[0] += 1
            w[1] += t.packets
            w[2] += t.bytes
    want_v8 = {k[1:]: v for k, v in sums.items() if k[0] == "want"}
    got_v8 = {k: v for k, v in sums.items() if k[0] != "want"}
    assert got_v8 == want_v8
    del agg

    lines = dump.read_text().splitlines()
    v4_flows = sum(1 for t in truth.flows if ":" not in t.src)
    assert sum(1 for ln in lines if " 127.0.0.1:" in ln and " v5 " in ln) == v4_flows
    assert sum(1 for ln in lines if " v8 protocol-port " in ln) == len(got_v8)
