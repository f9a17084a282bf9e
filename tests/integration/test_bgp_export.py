"""The daemon learns routes from a real BGP speaker (BIRD, in a test namespace) through its ExaBGP, and the
v9 / IPFIX records nfcapd collects carry the AS numbers, masks and BGP next hops those routes give."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from collectors import HAVE_NFDUMP, start_nfcapd
from test_daemon import Daemon, wait_for

from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec
from tests.netns import add_veth, namespaces, unavailable

A4, B4, A6, B6 = "198.18.255.1", "198.18.255.2", "2001:db8:ffff::1", "2001:db8:ffff::2"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed"),
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
    pytest.mark.skipif(shutil.which("exabgp") is None or shutil.which("bird") is None,
                       reason="exabgp and bird (Debian exabgp, bird2) are not installed"),
]

BIRD_CONF = """\
router id {b4};
protocol device {{ }}
protocol static s4 {{ ipv4; route 198.18.0.0/16 blackhole; route 198.19.0.0/16 blackhole; }}
protocol static s6 {{ ipv6; route 2001:db8::/32 blackhole; }}
filter tagged {{
  if net = 198.18.0.0/16 then {{ bgp_path.prepend(64999); bgp_path.prepend(64998); }}
  if net = 2001:db8::/32 then bgp_path.prepend(64777);
  accept;
}}
protocol bgp flowd {{
  local {b4} as 65001;
  neighbor {a4} as 65000;
  connect retry time 1;
  ipv4 {{ import none; export filter tagged; }};
  ipv6 {{ import none; export filter tagged; next hop address {b6}; }};
}}
"""

CONFIG = """
forwarding-options:
  sampling:
    input: {{rate: 1}}
    family:
      inet:
        output:
          flow-server:
            127.0.0.1: {{port: {port4}, version9: true}}
          flow-active-timeout: 1800
          flow-inactive-timeout: 1800
      inet6:
        output:
          flow-server:
            127.0.0.1: {{port: {port6}, version-ipfix: true}}
          flow-active-timeout: 1800
          flow-inactive-timeout: 1800
flowd:
  routing:
    bgp:
      neighbor:
        {b4}: {{peer-as: 65001, local-as: 65000, local-address: {a4}, router-id: {a4}, speaker: "{speaker}"}}
"""

# (origin AS, mask, BGP next hop) per announced prefix, as BIRD's filter makes them
ROUTES = {"198.18.": (64999, 16, B4), "198.19.": (65001, 16, B4), "2001:db8:": (64777, 32, B6)}


def expected(address: str) -> tuple[int, int, str]:
    return next(v for k, v in ROUTES.items() if address.startswith(k))


def test_bgp_routes_reach_the_collectors(tmp_path: Path) -> None:
    # no FIN/RST closes: every flow stays cached (long timeouts) until the final flush, after BGP is up
    truth = write_capture(SynthSpec(packets=6_000, flows=600, seed=9, duration=60.0, fin_rst_share=0.0),
                          str(tmp_path / "t.pcap"))
    with namespaces(2) as (a, b):
        add_veth(a, "bgp0", b, "bgp1")
        for ns, dev, v4, v6 in ((a, "bgp0", A4, A6), (b, "bgp1", B4, B6)):
            subprocess.run(ns.exec_args("sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.disable_ipv6=0"), check=True)
            ns.ip("addr", "add", f"{v4}/24", "dev", dev)
            ns.ip("addr", "add", f"{v6}/64", "dev", dev, "nodad")
        (tmp_path / "bird.conf").write_text(BIRD_CONF.format(a4=A4, b4=B4, b6=B6))
        bird = subprocess.Popen(b.exec_args("bird", "-f", "-c", str(tmp_path / "bird.conf"), "-s",
                                            str(tmp_path / "bird.ctl")),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with start_nfcapd(tmp_path / "v4") as c4, start_nfcapd(tmp_path / "v6") as c6:
                cfg = tmp_path / "flowd.yaml"
                cfg.write_text(CONFIG.format(port4=c4.port, port6=c6.port, a4=A4, b4=B4,
                                             speaker=" ".join(a.exec_args("exabgp"))))
                d = Daemon(tmp_path, "--config", str(cfg), "--replay", str(tmp_path / "t.pcap"),
                           "--replay-speed", "max")

                def learnt() -> bool:
                    sources = d.call("accounting.routing")["interfaces"][0]["routing"]["sources"]  # type: ignore[index]
                    return bool(sources) and sources[0]["ipv4_prefixes"] == 2 and sources[0]["ipv6_prefixes"] == 1

                wait_for(learnt, timeout=60)
                wait_for(lambda: "finished after" in d.log.read_text())
                assert "Established" in d.cli("show services accounting routing").stdout
                status, log = d.stop()  # the final flush exports every cached flow, with its routes
                assert status == 0, log
                c4.wait_idle()
                c6.wait_idle()
        finally:
            bird.terminate()
            bird.wait(timeout=10)
    got: Counter[tuple[object, ...]] = Counter()
    for f in c4.flows() + c6.flows():
        rec = f["nfdump"]
        hop = rec.get("bgp4_next_hop") or rec.get("bgp6_next_hop")
        got[(f["src"], f["dst"], rec["src_as"], rec["dst_as"], rec["src_mask"], rec["dst_mask"], hop)] += 1
    want: Counter[tuple[object, ...]] = Counter()
    for t in truth.flows:
        (sas, smask, _), (das, dmask, hop) = expected(t.src), expected(t.dst)
        want[(t.src, t.dst, sas, das, smask, dmask, hop)] += 1
    assert set(got) == set(want)  # (the truth splits some keys at its own, shorter timeouts)
    assert {k[2] for k in want} | {k[3] for k in want} >= {64999, 65001, 64777}
