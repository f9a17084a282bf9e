"""Kernel FIB source: routes added and removed with `ip route` inside a test namespace follow into the table."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import numpy as np
import pytest

from flowd.routing.kernel import KernelRoutes
from flowd.routing.rib import SourceRib
from tests.fakes import FakeClock
from tests.routing.polling import until
from tests.netns import Namespace, add_veth, namespaces, unavailable

pyroute2 = pytest.importorskip("pyroute2")
WAIT = 20.0


def lookup(rib: SourceRib, address: str) -> tuple[int, str, int]:
    addr = ipaddress.ip_address(address)
    m = rib.families[addr.version].lookup(np.frombuffer(addr.packed, np.uint8)[None, :])
    hop = ipaddress.ip_address(bytes(m.next_hop[0]))
    return int(m.length[0]), str(hop), int(m.ifindex[0])


@pytest.mark.integration
@pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))
def test_routes_follow_ip_route() -> None:
    with namespaces(2) as (a, b):
        add_veth(a, "fib0", b, "fib1")
        a.ip("addr", "add", "198.18.5.1/24", "dev", "fib0")
        a.ip("route", "add", "203.0.113.0/24", "via", "198.18.5.2")
        with a.inside():  # the netlink socket opens in namespace a
            asyncio.run(scenario(a))


async def scenario(a: Namespace) -> None:
    rib = SourceRib("kernel")
    source = KernelRoutes(rib, FakeClock())
    await source.start()
    try:
        await asyncio.wait_for(source.synced.wait(), WAIT)
        assert rib.state == "Established", rib.last_error
        ifindex = socket.if_nametoindex("fib0")  # asked inside namespace a
        assert lookup(rib, "203.0.113.7") == (24, "198.18.5.2", ifindex)  # from the dump
        assert lookup(rib, "198.18.5.9") == (24, "0.0.0.0", ifindex)  # connected: no gateway
        assert lookup(rib, "192.0.2.1") == (-1, "0.0.0.0", 0)
        a.ip("route", "add", "203.0.113.128/25", "via", "198.18.5.3")
        await until("the added route", lambda: lookup(rib, "203.0.113.200")[0] == 25)
        assert lookup(rib, "203.0.113.200") == (25, "198.18.5.3", ifindex)
        a.ip("route", "del", "203.0.113.0/24")
        await until("the removed route", lambda: lookup(rib, "203.0.113.7")[0] == -1)
        assert lookup(rib, "203.0.113.200")[0] == 25
        assert rib.withdrawn == 1
    finally:
        await source.stop()
