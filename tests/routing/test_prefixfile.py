"""Prefix files: both layouts parse to the routes they state; a malformed line names file and line."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pytest

from flowd.routing.prefixfile import PrefixFileError, read_prefix_file
from flowd.routing.rib import FamilyRib


def routes(path: Path, fmt: str) -> set[tuple[str, int, str]]:
    out = set()
    for version, fam in read_prefix_file(path, fmt).items():
        for net, length, origin, hop in zip(fam.nets, fam.lengths, fam.origin_as, fam.next_hop):
            prefix = ipaddress.ip_network((bytes(net), int(length)))
            out.add((str(prefix), int(origin), str(ipaddress.ip_address(bytes(hop)))))
    return out


def test_flowd_format(tmp_path: Path) -> None:
    path = tmp_path / "routes.txt"
    path.write_text("# prefix origin-as next-hop\n\n192.0.2.0/24 64500\n"
                    "2001:db8::/32\tAS64501  2001:db8::1  # trailing comment\n"
                    "198.51.100.0/24 64502 192.0.2.254\n0.0.0.0/0 4294967295\n")
    assert routes(path, "flowd") == {
        ("192.0.2.0/24", 64500, "0.0.0.0"), ("2001:db8::/32", 64501, "2001:db8::1"),
        ("198.51.100.0/24", 64502, "192.0.2.254"), ("0.0.0.0/0", 4294967295, "0.0.0.0")}


def test_ip2asn_layout_splits_ranges_and_skips_not_routed(tmp_path: Path) -> None:
    path = tmp_path / "ip2asn-combined.tsv"
    path.write_text("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n"
                    "1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n"
                    "1.0.4.0\t1.0.6.255\t38803\tAU\tGTELECOM\n"
                    "2001:200::\t2001:200:ffff:ffff:ffff:ffff:ffff:ffff\t2500\tJP\tWIDE\n")
    assert routes(path, "ip2asn") == {
        ("1.0.0.0/24", 13335, "0.0.0.0"), ("1.0.4.0/23", 38803, "0.0.0.0"), ("1.0.6.0/24", 38803, "0.0.0.0"),
        ("2001:200::/32", 2500, "::")}


@pytest.mark.parametrize("fmt, line, message", [
    ("flowd", "192.0.2.1/24 64500", "bad prefix '192.0.2.1/24'"),
    ("flowd", "192.0.2.0/24", "expected PREFIX ORIGIN-AS [NEXT-HOP], got 1 fields"),
    ("flowd", "192.0.2.0/24 ASX", "bad AS number 'ASX'"),
    ("flowd", "192.0.2.0/24 4294967296", "bad AS number '4294967296'"),
    ("flowd", "192.0.2.0/24 1 2001:db8::1", "next hop 2001:db8::1 is not an IPv4 address"),
    ("flowd", "192.0.2.0/24 1 nowhere", "bad next hop 'nowhere'"),
    ("ip2asn", "1.0.0.0 1.0.0.255 13335", "expected range_start, range_end, AS_number"),
    ("ip2asn", "1.0.1.0\t1.0.0.0\t5\tUS\tX", "bad address range 1.0.1.0 - 1.0.0.0"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, fmt: str, line: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(("# ok\n10.0.0.0/8 1\n" if fmt == "flowd" else "10.0.0.0\t10.255.255.255\t1\tZZ\tx\n")
                    + line + "\n")
    with pytest.raises(PrefixFileError) as err:
        read_prefix_file(path, fmt)
    number = 3 if fmt == "flowd" else 2
    assert str(err.value).startswith(f"{path}:{number}: {message}")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PrefixFileError, match="No such file or directory"):
        read_prefix_file(tmp_path / "absent.txt")


def test_loaded_file_answers_lookups(tmp_path: Path) -> None:
    path = tmp_path / "routes.txt"
    path.write_text("10.0.0.0/8 100\n10.1.0.0/16 200 192.0.2.1\n10.1.0.0/16 300 192.0.2.2\n")
    fam = FamilyRib(4)
    parsed = read_prefix_file(path)[4]
    fam.load(parsed.nets, parsed.lengths, origin_as=parsed.origin_as, next_hop=parsed.next_hop)
    addrs = np.array([[10, 1, 2, 3], [10, 2, 0, 0], [11, 0, 0, 0]], np.uint8)
    m = fam.lookup(addrs)
    assert m.origin_as.tolist() == [300, 100, 0]  # the last line of a repeated prefix counts
    assert m.length.tolist() == [16, 8, -1]
    assert [bytes(h) for h in m.next_hop] == [bytes((192, 0, 2, 2)), bytes(4), bytes(4)]
