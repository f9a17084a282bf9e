"""Prefix files: routes read from a text file, in flowd's format or the ip2asn TSV layout.

flowd's format (``format flowd``), one route per line; ``#`` starts a comment, blank lines are
ignored; fields are separated by spaces or tabs:

    PREFIX  ORIGIN-AS  [NEXT-HOP]
    192.0.2.0/24      64500
    2001:db8::/32     AS64501   2001:db8::1
    198.51.100.0/24   64502     192.0.2.254

``PREFIX`` is an IPv4 or IPv6 prefix without host bits; ``ORIGIN-AS`` a number 0..4294967295,
optionally written ``AS64500``; ``NEXT-HOP`` an address of the prefix's family. A prefix listed
twice keeps its last line.

ip2asn (``format ip2asn``): the tab-separated layout of the iptoasn.com data sets
(``ip2asn-v4.tsv``, ``ip2asn-v6.tsv``, ``ip2asn-combined.tsv``), one address range per line:

    range_start  range_end  AS_number  country_code  AS_description

A range is split into the prefixes that cover it exactly; ranges with AS 0 ("Not routed") are
skipped. Peer AS and next hops are not in this layout (0).

Any malformed line stops the load with ``PrefixFileError("FILE:LINE: message")`` and the running
routes stay as they were (the caller swaps tables only after a complete parse).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.model.record import Record

FORMATS: Final = ("flowd", "ip2asn")
AS_MAX: Final = 0xFFFFFFFF


class PrefixFileError(ValueError):
    """A prefix file that cannot be read or has a malformed line (``FILE:LINE: message``)."""


@dataclass(slots=True, eq=False, repr=False)
class FamilyRoutes(Record):
    """The routes of one family as columns, ready for ``FamilyRib.load``."""

    nets: npt.NDArray[np.uint8]
    lengths: npt.NDArray[np.int64]
    origin_as: npt.NDArray[np.uint32]
    next_hop: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass(slots=True, eq=False, repr=False)
class _Columns(Record):
    nbytes: int
    nets: bytearray
    lengths: list[int]
    origin_as: list[int]
    next_hop: bytearray

    def add(self, net: bytes, length: int, origin_as: int, next_hop: bytes) -> None:
        self.nets += net
        self.lengths.append(length)
        self.origin_as.append(origin_as)
        self.next_hop += next_hop

    def freeze(self) -> FamilyRoutes:
        n = len(self.lengths)
        return FamilyRoutes(np.frombuffer(bytes(self.nets), np.uint8).reshape(n, self.nbytes),
                            np.array(self.lengths, np.int64), np.array(self.origin_as, np.uint32),
                            np.frombuffer(bytes(self.next_hop), np.uint8).reshape(n, self.nbytes))


def read_prefix_file(path: str | Path, fmt: str = "flowd") -> dict[int, FamilyRoutes]:
    """Parse the whole file; returns the routes per IP version (4, 6)."""
    if fmt not in FORMATS:
        raise ValueError(f"prefix file format {fmt!r}: expected one of {', '.join(FORMATS)}")
    cols = {4: _Columns(4, bytearray(), [], [], bytearray()), 6: _Columns(16, bytearray(), [], [], bytearray())}
    parse = _flowd_line if fmt == "flowd" else _ip2asn_line
    try:
        with open(path, encoding="utf-8", errors="strict") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    for net, origin, hop in parse(line):
                        cols[net.version].add(net.network_address.packed, net.prefixlen, origin, hop)
                except ValueError as exc:
                    raise PrefixFileError(f"{path}:{number}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise PrefixFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise PrefixFileError(f"{path}: {exc.strerror or exc}") from None
    return {version: c.freeze() for version, c in cols.items()}


Parsed = Iterator[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int, bytes]]


def _flowd_line(line: str) -> Parsed:
    fields = line.split("#", 1)[0].split()
    if not fields:
        return
    if len(fields) not in (2, 3):
        raise ValueError(f"expected PREFIX ORIGIN-AS [NEXT-HOP], got {len(fields)} fields")
    try:
        net = ipaddress.ip_network(fields[0])
    except ValueError:
        raise ValueError(f"bad prefix {fields[0]!r}") from None
    origin = _as_number(fields[1])
    hop = bytes(4 if net.version == 4 else 16)
    if len(fields) == 3:
        try:
            addr = ipaddress.ip_address(fields[2])
        except ValueError:
            raise ValueError(f"bad next hop {fields[2]!r}") from None
        if addr.version != net.version:
            raise ValueError(f"next hop {fields[2]} is not an IPv{net.version} address")
        hop = addr.packed
    yield net, origin, hop


def _ip2asn_line(line: str) -> Parsed:
    if not line.strip() or line.startswith("#"):
        return
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) < 3:
        raise ValueError(f"expected range_start, range_end, AS_number, ... separated by tabs, "
                         f"got {len(fields)} field(s)")
    try:
        first, last = ipaddress.ip_address(fields[0]), ipaddress.ip_address(fields[1])
    except ValueError:
        raise ValueError(f"bad address range {fields[0]!r} - {fields[1]!r}") from None
    if first.version != last.version or first > last:  # type: ignore[operator]
        raise ValueError(f"bad address range {first} - {last}")
    origin = _as_number(fields[2])
    if origin == 0:
        return  # "Not routed"
    hop = bytes(4 if first.version == 4 else 16)
    for net in ipaddress.summarize_address_range(first, last):
        yield net, origin, hop


def _as_number(text: str) -> int:
    digits = text[2:] if text[:2].upper() == "AS" else text
    if not digits.isdigit() or int(digits) > AS_MAX:
        raise ValueError(f"bad AS number {text!r} (expected 0..{AS_MAX})")
    return int(digits)
