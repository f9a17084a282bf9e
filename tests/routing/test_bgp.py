"""BGP through ExaBGP against a real second speaker (BIRD) over TCP between two test namespaces.

BIRD (namespace b, AS 65001) announces IPv4 and IPv6 prefixes with known AS paths to flowd's ExaBGP
(namespace a, AS 65000, passive); flowd's routes for that session must hold exactly those prefixes,
AS numbers and next hops; disabling a BIRD static protocol withdraws its prefixes; disabling the
session flushes every route (counted). Nothing leaves the two namespaces.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from flowd.routing.bgp import BgpSession, BgpSpeaker, ExaBgpFeed, exabgp_config
from flowd.routing.rib import SourceRib
from tests.fakes import FakeClock
from tests.routing.polling import until
from tests.netns import Namespace, add_veth, namespaces, unavailable

A4, B4 = "198.18.0.1", "198.18.0.2"
A6, B6 = "2001:db8:ff::1", "2001:db8:ff::2"
WAIT = 20.0  # seconds the session gets to come up / converge (a bound, not a pause)

BIRD_CONF = """\
router id {b4};
log "{log}" all;
protocol device {{ }}
protocol static s4 {{ ipv4; route 203.0.113.0/24 blackhole; route 198.51.100.0/25 blackhole; }}
protocol static s4more {{ ipv4; route 203.0.113.128/25 blackhole; }}
protocol static s6 {{ ipv6; route 2001:db8:100::/48 blackhole; }}
filter tagged {{
  if net = 203.0.113.0/24 then {{ bgp_path.prepend(64999); bgp_path.prepend(64998); }}
  if net = 2001:db8:100::/48 then bgp_path.prepend(64777);
  accept;
}}
protocol bgp flowd {{
  local {b4} as 65001;
  neighbor {a4} as 65000;
  hold time 30;
  connect retry time 1;
  ipv4 {{ import none; export filter tagged; }};
  ipv6 {{ import none; export filter tagged; next hop address {b6}; }};
}}
"""


def lookup(rib: SourceRib, version: int, address: str) -> tuple[int, int, int, str]:
    import ipaddress
    raw = np.frombuffer(ipaddress.ip_address(address).packed, np.uint8)[None, :]
    m = rib.families[version].lookup(raw)
    hop = str(ipaddress.ip_address(bytes(m.bgp_next_hop[0]))) if m.length[0] >= 0 else "-"
    return int(m.length[0]), int(m.origin_as[0]), int(m.peer_as[0]), hop


def birdc(ns: Namespace, sock: Path, *command: str) -> str:
    done = subprocess.run(ns.exec_args("birdc", "-s", str(sock), *command), capture_output=True, text=True,
                          timeout=30, check=True)
    return done.stdout


@pytest.mark.integration
@pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))
@pytest.mark.skipif(shutil.which("exabgp") is None or shutil.which("bird") is None,
                    reason="exabgp and bird (Debian exabgp, bird2) are not installed")
def test_routes_from_bird_through_exabgp(tmp_path: Path) -> None:
    with namespaces(2) as (a, b):
        add_veth(a, "bgp0", b, "bgp1")
        for ns, dev, v4, v6 in ((a, "bgp0", A4, A6), (b, "bgp1", B4, B6)):
            subprocess.run(ns.exec_args("sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.disable_ipv6=0"), check=True)
            ns.ip("addr", "add", f"{v4}/24", "dev", dev)
            ns.ip("addr", "add", f"{v6}/64", "dev", dev, "nodad")
        conf = tmp_path / "bird.conf"
        conf.write_text(BIRD_CONF.format(a4=A4, b4=B4, b6=B6, log=tmp_path / "bird.log"))
        sock = tmp_path / "bird.ctl"
        bird = subprocess.Popen(b.exec_args("bird", "-f", "-c", str(conf), "-s", str(sock)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            asyncio.run(scenario(a, b, sock))
        finally:
            bird.terminate()
            bird.wait(timeout=10)


async def scenario(a: Namespace, b: Namespace, sock: Path) -> None:
    rib = SourceRib("bgp 198.18.0.2")
    session = BgpSession(neighbor=B4, peer_as=65001, local_as=65000, local_address=A4, router_id=A4,
                         passive=True, speaker=tuple(a.exec_args("exabgp")))
    async with BgpSpeaker(session, rib, FakeClock()) as speaker:
        try:
            await until("4 IPv4 + 1 IPv6 routes", lambda: rib.prefixes(4) == 3 and rib.prefixes(6) == 1)
        except AssertionError:
            logs = [p for p in (speaker.log_path, sock.parent / "bird.log") if p is not None and p.exists()]
            if speaker.log_path is not None:
                logs.append(speaker.log_path.with_name("exabgp.stderr"))
            text = "\n".join(f"--- {p.name}:\n{p.read_text()[-2000:]}" for p in logs if p.exists())
            raise AssertionError(f"state {rib.state}, errors {rib.last_error!r}\n{text}") from None
        assert rib.state == "Established"
        assert lookup(rib, 4, "203.0.113.5") == (24, 64999, 65001, B4)  # path 65001 64998 64999
        assert lookup(rib, 4, "203.0.113.200") == (25, 65001, 65001, B4)  # BIRD's own route
        assert lookup(rib, 4, "198.51.100.1") == (25, 65001, 65001, B4)
        assert lookup(rib, 4, "198.51.100.200") == (-1, 0, 0, "-")
        assert lookup(rib, 6, "2001:db8:100:5::1") == (48, 64777, 65001, B6)

        birdc(b, sock, "disable", "s4more")  # withdraws 203.0.113.128/25
        await until("the withdrawal", lambda: rib.prefixes(4) == 2)
        assert lookup(rib, 4, "203.0.113.200") == (24, 64999, 65001, B4)  # back to the covering /24
        assert rib.withdrawn == 1

        birdc(b, sock, "disable", "flowd")  # the session goes down: every route is flushed
        await until("the session loss", lambda: rib.prefixes(4) == 0 and rib.prefixes(6) == 0)
        assert rib.state == "Idle"
        assert rib.flushed == 3
        assert lookup(rib, 4, "203.0.113.5") == (-1, 0, 0, "-")

        birdc(b, sock, "enable", "flowd")  # and comes back
        await until("the session to return", lambda: rib.prefixes(4) == 2 and rib.prefixes(6) == 1)


def test_feed_counts_garbage_and_ignores_other_families() -> None:
    rib = SourceRib("bgp")
    feed = ExaBgpFeed(rib)
    feed.line("this is not json", 1.0)
    feed.line('{"type": "update", "neighbor": {"message": {"update": {"attribute": {"as-path": [1, 2]}, '
              '"announce": {"ipv4 flow": {"null": [{"nlri": "x"}]}, '
              '"ipv4 unicast": {"192.0.2.1": [{"nlri": "10.0.0.0/8"}]}}}}}}', 2.0)
    assert rib.errors == 1 and rib.prefixes(4) == 1 and rib.last_update == 2.0
    assert lookup(rib, 4, "10.1.1.1") == (8, 2, 1, "192.0.2.1")


def test_config_names_the_session() -> None:
    text = exabgp_config(BgpSession("192.0.2.2", 65001, 65000, "192.0.2.1", "192.0.2.1", passive=False,
                                    port=1179), Path("/run/x/relay"))
    assert "neighbor 192.0.2.2 {" in text and "connect 1179;" in text and "passive false;" in text
    assert "peer-as 65001;" in text and "local-as 65000;" in text and "run /run/x/relay;" in text
