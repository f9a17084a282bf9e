"""Walking capture records into columns: the pcap record walk (compiled or numpy), pcapng interfaces and block rows."""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.capture.layouts import MAX_CAPLEN, PCAP_RECORD_HEADER_LEN, Buffer
from flowd.model.batch import F64, I64, U16, U32, U64
from flowd.model.record import Frozen
from flowd.native import compiled

# --- column helpers ---------------------------------------------------------------------------


def _pcap_header_dtype(order: str) -> np.dtype[np.void]:
    return np.dtype([("sec", order + "u4"), ("frac", order + "u4"),
                     ("caplen", order + "u4"), ("wirelen", order + "u4")])


PCAP_HEADER_DTYPES: Final = {"<": _pcap_header_dtype("<"), ">": _pcap_header_dtype(">")}
PCAP_CAPLEN_AT: Final = {order: struct.Struct(order + "I").unpack_from for order in "<>"}
EPB_DTYPES: Final = {  # an EPB from its first byte up to its packet data
    order: np.dtype([(name, order + "u4") for name in
                     ("type", "length", "ifid", "high", "low", "caplen", "wirelen")])
    for order in "<>"
}
U32_DTYPES: Final = {order: np.dtype(order + "u4") for order in "<>"}


def gather_records(buf: Buffer, offsets: I64, dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    """Copy the record headers starting at each offset out of buf (one strided view, one gather)."""
    rows = len(buf) - dtype.itemsize + 1
    view = np.ndarray(shape=(max(rows, 0),), dtype=dtype, buffer=buf, strides=(1,))
    return view[offsets]


def ticks_to_seconds(ticks: U64, units: U64, units_float: F64) -> F64:
    """Seconds for timestamps counted in 1/units s (whole seconds split off for precision).

    A units of 0 stands for a resolution too fine for uint64; units_float holds it.
    """
    exact = units != 0
    divisor = np.where(exact, units, np.uint64(1))
    whole = ticks // divisor
    seconds: F64 = whole.astype(np.float64) + (ticks - whole * divisor) / units_float
    if not exact.all():
        seconds = np.where(exact, seconds, ticks / units_float)
    return seconds


def _walk_pcap(buf: Buffer, pos: int, limit: int,
               caplen_at: Callable[[Buffer, int], tuple[int, ...]]) -> list[int]:
    """Offsets of up to limit consecutive records from pos; unchecked (see _walk_pcap_numpy).

    Stops early when a record header would start past the buffer; that last offset is included.
    """
    offsets: list[int] = []
    append = offsets.append
    try:
        for _ in range(limit):
            append(pos)
            pos += 16 + caplen_at(buf, pos + 8)[0]
    except struct.error:
        pass
    return offsets


class WalkStop(IntEnum):
    """Why a pcap record walk stopped; the same numbers as walk_pcap's in flowd/native/_fastpath.c."""

    FULL = 0  # the batch is full
    HEADER = 1  # the buffer ends at or inside the next record header
    TOO_LONG = 2  # the next record's captured length exceeds MAX_CAPLEN
    DATA = 3  # the buffer ends inside the next record's data


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _PcapWalk(Frozen):
    """The sound records a walk took (data offset, lengths, time) and where and why it stopped."""

    offset: I64
    caplen: U32
    wirelen: U32
    ts: F64
    end: int  # the first byte after the last record taken
    stop: WalkStop


_PcapWalker = Callable[[Buffer, int, int, str, int], _PcapWalk]  # buf, pos, limit, byte order, units


def _walk_pcap_numpy(buf: Buffer, pos: int, limit: int, order: str, units: int) -> _PcapWalk:
    """Up to limit sound records from pos: the Python walk, then one numpy gather of the headers."""
    end = len(buf)
    offsets = np.array(_walk_pcap(buf, pos, limit, PCAP_CAPLEN_AT[order]), dtype=np.int64)
    # Offsets increase, so the records whose 16-byte header is present form a prefix.
    complete = int(np.searchsorted(offsets, end - PCAP_RECORD_HEADER_LEN, side="right"))
    headers = gather_records(buf, offsets[:complete], PCAP_HEADER_DTYPES[order])
    caplen = headers["caplen"].astype(np.uint32)
    data = offsets[:complete] + PCAP_RECORD_HEADER_LEN
    bad = np.flatnonzero((caplen > MAX_CAPLEN) | (data + caplen > end))
    good = int(bad[0]) if bad.size else complete
    if good == len(offsets):  # only a walk that took limit records has no incomplete last one
        stop = WalkStop.FULL
    elif good == complete:
        stop = WalkStop.HEADER
    else:
        stop = WalkStop.TOO_LONG if caplen[good] > MAX_CAPLEN else WalkStop.DATA
    head = headers[:good]
    return _PcapWalk(offset=data[:good], caplen=caplen[:good],
                     wirelen=head["wirelen"].astype(np.uint32),
                     ts=head["sec"] + head["frac"] / float(units),
                     end=int(data[good - 1]) + int(caplen[good - 1]) if good else pos, stop=stop)


def _compiled_walker() -> _PcapWalker | None:
    """_walk_pcap_numpy's C twin (flowd.native._fastpath); None if unbuilt, disabled or mismatched."""
    walk = compiled("walk_pcap", WALK_STOPS={stop.name: stop.value for stop in WalkStop})
    if walk is None:
        return None
    swapped = {"<": sys.byteorder != "little", ">": sys.byteorder == "little"}

    def walk_pcap_compiled(buf: Buffer, pos: int, limit: int, order: str, units: int) -> _PcapWalk:
        offset, caplen = np.empty(limit, np.int64), np.empty(limit, np.uint32)
        wirelen, ts = np.empty(limit, np.uint32), np.empty(limit, np.float64)
        count, end, stop = walk(buf, pos, len(buf), limit, swapped[order], units == 1_000_000_000,
                                offset, caplen, wirelen, ts, MAX_CAPLEN)
        return _PcapWalk(offset=offset[:count], caplen=caplen[:count], wirelen=wirelen[:count],
                         ts=ts[:count], end=end, stop=WalkStop(stop))

    return walk_pcap_compiled


WALK_PCAP: _PcapWalker = _compiled_walker() or _walk_pcap_numpy


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Interface(Frozen):
    """One pcapng interface, as its IDB described it."""

    linktype: int
    snaplen: int  # 0 = no limit
    units: int  # timestamp ticks per second (if_tsresol)
    tsoffset: int  # seconds added to every timestamp (if_tsoffset)


class InterfaceTable:
    """Every pcapng interface of the file, in IDB order, with numpy columns for per-frame lookup."""

    def __init__(self) -> None:
        self.items: list[Interface] = []
        self.linktype: U16 = np.zeros(8, dtype=np.uint16)
        self.units: U64 = np.zeros(8, dtype=np.uint64)  # 0: too fine for uint64, see units_float
        self.units_float: F64 = np.ones(8, dtype=np.float64)
        self.tsoffset: F64 = np.zeros(8, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.items)

    def append(self, interface: Interface) -> None:
        n = len(self.items)
        if n == len(self.linktype):  # grow by doubling: a file may hold very many IDBs
            self.linktype = np.resize(self.linktype, 2 * n)
            self.units = np.resize(self.units, 2 * n)
            self.units_float = np.resize(self.units_float, 2 * n)
            self.tsoffset = np.resize(self.tsoffset, 2 * n)
        self.items.append(interface)
        self.linktype[n] = interface.linktype
        self.units[n] = interface.units if interface.units < 1 << 64 else 0
        self.units_float[n] = float(interface.units)
        self.tsoffset[n] = float(interface.tsoffset)


class NgRows:
    """The frames of a pcapng batch being collected: numpy runs of EPBs, Python rows otherwise."""

    Run = tuple[I64, U32, U32, U64, I64, U32]  # offset, caplen, wirelen, ticks, slot, ifid

    def __init__(self) -> None:
        self.count = 0
        self.untimed: list[int] = []  # rows of SPBs, which carry no timestamp
        self._runs: list[NgRows.Run] = []
        self._rows: list[tuple[int, int, int, int, int, int]] = []

    def add(self, offset: int, caplen: int, wirelen: int, ticks: int, slot: int, ifid: int,
            *, timed: bool = True) -> None:
        """Add one frame; slot indexes CaptureReader._interfaces."""
        if not timed:
            self.untimed.append(self.count)
        self._rows.append((offset, caplen, wirelen, ticks, slot, ifid))
        self.count += 1

    def add_run(self, offset: I64, caplen: U32, wirelen: U32, ticks: U64, slot: I64,
                ifid: U32) -> None:
        self._flush()
        self._runs.append((offset, caplen, wirelen, ticks, slot, ifid))
        self.count += len(offset)

    def _flush(self) -> None:
        if self._rows:
            offset, caplen, wirelen, ticks, slot, ifid = zip(*self._rows, strict=True)
            self._runs.append((
                np.array(offset, dtype=np.int64), np.array(caplen, dtype=np.uint32),
                np.array(wirelen, dtype=np.uint32), np.array(ticks, dtype=np.uint64),
                np.array(slot, dtype=np.int64), np.array(ifid, dtype=np.uint32)))
            self._rows = []

    def columns(self) -> NgRows.Run:
        self._flush()
        if len(self._runs) == 1:
            return self._runs[0]
        offset, caplen, wirelen, ticks, slot, ifid = zip(*self._runs, strict=True)
        return (np.concatenate(offset), np.concatenate(caplen), np.concatenate(wirelen),
                np.concatenate(ticks), np.concatenate(slot), np.concatenate(ifid))
