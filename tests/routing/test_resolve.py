"""RouteSet: several sources (longest match first, precedence on ties, attributes completed from the
next match), mixed IPv4/IPv6 batches in row order, and SNMP index maps."""

from __future__ import annotations

import ipaddress

import numpy as np

from flowd.model.flowkey import KEY_BYTES, FlowKey
from flowd.routing.resolve import RouteSet
from flowd.routing.rib import Route, SourceRib


def source(name: str, *routes: Route) -> SourceRib:
    rib = SourceRib(name)
    rib.change(routes, [], now=1.0)
    return rib


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


BGP = source("bgp", Route(net("10.0.0.0/8"), origin_as=100, peer_as=1, bgp_next_hop="192.0.2.1", next_hop="192.0.2.1"),
             Route(net("10.1.0.0/16"), origin_as=200, peer_as=1, bgp_next_hop="192.0.2.2", next_hop="192.0.2.2"),
             Route(net("2001:db8::/32"), origin_as=600, peer_as=6, bgp_next_hop="2001:db8::1"))
KERNEL = source("kernel", Route(net("10.1.0.0/16"), next_hop="198.18.0.1", ifindex=3),
                Route(net("10.1.2.0/24"), next_hop="198.18.0.2", ifindex=4),
                Route(net("2001:db8::/32"), next_hop="fe80::1", ifindex=5))


def keys(pairs: list[tuple[str, str]]) -> np.ndarray:
    raw = b"".join(FlowKey(ipaddress.ip_address(s), ipaddress.ip_address(d), 1, 2, 6, 0, 9).pack() for s, d in pairs)
    return np.frombuffer(raw, np.uint8).reshape(len(pairs), KEY_BYTES).copy()


def row(routes: RouteSet, src: str, dst: str) -> tuple[object, ...]:
    r = routes.flow_routes(keys([(src, dst)]), np.array([9], np.uint16))
    hop = ipaddress.ip_address(bytes(r.next_hop[0, 12:16] if ":" not in dst else r.next_hop[0]))
    bgp = ipaddress.ip_address(bytes(r.bgp_next_hop[0, 12:16] if ":" not in dst else r.bgp_next_hop[0]))
    return (int(r.src_origin_as[0]), int(r.dst_origin_as[0]), int(r.dst_peer_as[0]), int(r.src_mask[0]),
            int(r.dst_mask[0]), str(hop), str(bgp), int(r.output_if[0]), int(r.input_if[0]))


def test_longest_match_then_precedence_then_completion() -> None:
    routes = RouteSet([BGP, KERNEL], input_map={9: 509, 4: 504})
    # the same /16 in both: BGP wins (listed first) with its next hop; the kernel adds the output interface
    assert row(routes, "10.9.9.9", "10.1.5.5") == (100, 200, 1, 8, 16, "192.0.2.2", "192.0.2.2", 3, 509)
    # the kernel's /24 is longer: its next hop and interface win, AS and BGP next hop come from BGP's /16
    assert row(routes, "10.9.9.9", "10.1.2.3") == (100, 200, 1, 8, 24, "198.18.0.2", "192.0.2.2", 504, 509)
    kernel_first = RouteSet([KERNEL, BGP])
    assert row(kernel_first, "10.9.9.9", "10.1.5.5")[5:8] == ("198.18.0.1", "192.0.2.2", 3)
    assert row(routes, "11.0.0.1", "11.0.0.2") == (0, 0, 0, 0, 0, "0.0.0.0", "0.0.0.0", 0, 509)


def test_a_mixed_batch_keeps_row_order() -> None:
    routes = RouteSet([BGP, KERNEL])
    pairs = [("10.1.0.1", "10.1.2.9")] + [("2001:db8::1", "2001:db8::2"), ("10.200.0.1", "10.1.2.3")] * 3
    batch = routes.flow_routes(keys(pairs), np.full(len(pairs), 9, np.uint16))
    for i, (s, d) in enumerate(pairs):
        one = routes.flow_routes(keys([(s, d)]), np.array([9], np.uint16))
        for name in one.__slots__:
            assert np.array_equal(getattr(batch, name)[i], getattr(one, name)[0]), (i, name)
