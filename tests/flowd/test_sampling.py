"""Firewall filter terms and the 1-in-N / run-length / packets-per-second sampler."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from flowd.config.loader import parse_config
from flowd.core.sampling import Sampler, apply_filter, match_prefixes
from flowd.model.flowkey import SRC, FlowKey


def keys(*rows: tuple[str, str, int, int, int]) -> np.ndarray:
    packed = [FlowKey(ipaddress.ip_address(s), ipaddress.ip_address(d), sp, dp, p, 0, 1).pack()
              for s, d, sp, dp, p in rows]
    return np.frombuffer(b"".join(packed), np.uint8).reshape(len(rows), 40)


FILTERS = """
forwarding-options:
  sampling:
    input: {rate: 1}
    family:
      inet:
        output:
          flow-server: {127.0.0.1: {port: 2055}}
firewall:
  family:
    inet:
      filter:
        probe:
          term:
            drop-ssh:
              from: {protocol: tcp, destination-port: 22}
              then: {count: ssh, discard: true}
            web:
              from: {destination-address: [198.18.0.0/16], port: [80, 443, "8000-8080"]}
              then: {sample: true, count: web}
            rest:
              from: {source-address: [198.19.0.0/16]}
              then: {count: seen}
interfaces:
  eth0:
    unit: {0: {family: {inet: {filter: {input: probe}}}}}
"""


def test_first_matching_term_decides_and_unmatched_is_discarded() -> None:
    cfg = parse_config(FILTERS, source="test", syntax="yaml")
    k = keys(("198.19.0.1", "198.18.0.9", 5000, 22, 6),    # drop-ssh
             ("198.19.0.1", "198.18.0.9", 5000, 443, 6),   # web
             ("198.19.0.1", "198.18.0.9", 8080, 5000, 17), # web (source port in range)
             ("198.19.0.1", "198.20.0.9", 5000, 80, 6),    # rest: accepted, counted, not sampled
             ("203.0.113.1", "198.20.0.9", 5000, 80, 6))   # no term: implicit discard
    res = apply_filter(cfg.filters["probe"], k)
    assert res.sample.tolist() == [False, True, True, False, False]
    assert res.counters == {"ssh": 1, "web": 2, "seen": 1}
    assert res.discarded == 2


def test_prefix_match_covers_ipv4_and_ipv6() -> None:
    k = keys(("198.18.5.1", "198.19.0.1", 1, 2, 17), ("2001:db8::1", "2001:db8::2", 1, 2, 17))
    assert match_prefixes(k, SRC, [ipaddress.ip_network("198.18.0.0/15")]).tolist() == [True, False]
    assert match_prefixes(k, SRC, [ipaddress.ip_network("2001:db8::/32")]).tolist() == [False, True]
    assert match_prefixes(k, SRC, [ipaddress.ip_network("0.0.0.0/0")]).tolist() == [True, False]


@pytest.mark.parametrize("rate, run_length, want", [
    (1, 0, [1] * 10),
    (3, 0, [1, 0, 0, 1, 0, 0, 1, 0, 0, 1]),
    (4, 1, [1, 1, 0, 0, 1, 1, 0, 0, 1, 1]),
    (2, 5, [1] * 10),
])
def test_one_in_n_with_run_length_across_batches(rate: int, run_length: int, want: list[int]) -> None:
    s = Sampler(rate=rate, run_length=run_length)
    got = s.select(np.zeros(4)).tolist() + s.select(np.zeros(6)).tolist()
    assert [int(x) for x in got] == want


def test_packets_per_second_cap_counts_in_packet_time_across_batches() -> None:
    s = Sampler(rate=1, max_packets_per_second=3)
    first = s.select(np.array([10.0, 10.1, 10.2, 10.3]))
    second = s.select(np.array([10.9, 11.0, 11.1, 11.2, 11.3, 12.5]))
    assert first.tolist() == [True, True, True, False]
    assert second.tolist() == [False, True, True, True, False, True]
    assert s.pps_limited == 3
