"""Frames → PacketBatch: the compiled decoder when it is built, else the numpy one; both follow `frame_rules`.

Every frame is accounted or counted under one DropReason. The rules are stated once, per frame, in
`flowd.core.frame_rules.decode_frame`; tests hold both batch decoders to it frame by frame.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from flowd.core.frame_rules import (
    DROP_CODE,
    MPLS_KEPT,
    OK,
    SLOW,
    Decoded,
    decode_rows,
    drops_of,
    frame_arrays,
)
from flowd.model.batch import MAC_BYTES, U8, FrameBatch, PacketBatch
from flowd.model.flowkey import KEY_BYTES
from flowd.native import compiled

# --- the batch decoder ---------------------------------------------------------------------------

def decode(frames: FrameBatch, macs: bool = False) -> Decoded:
    """Decode a batch of frames: accountable packets in input order, the rest counted by drop reason.

    Runs the compiled extract when flowd.native._fastpath is built (and FLOWD_NO_FASTPATH is not 1), else
    ``decode_numpy``; both give the same result. With ``macs`` the packets carry their MAC addresses.
    """
    extract = _EXTRACT
    if extract is None:
        return _decode_numpy(frames, macs)
    return _decode_compiled(frames, extract, macs)


def decode_unselected(frames: FrameBatch, macs: bool = False) -> tuple[Decoded, U8 | None]:
    """``decode``, where the packets may still hold a row for every frame: then the status column says
    which rows are accounted (``OK``), else it is None and every row is. Saves copying the accounted rows
    out for a caller that copies them anyway (flowd.runtime.shard_rows)."""
    extract = _EXTRACT
    if extract is None:
        return _decode_numpy(frames, macs), None
    full, status = _extract_all(frames, extract, macs)
    if bool((status == OK).all()):
        return _selected(full, status, frames), None
    return Decoded(packets=full, drops=drops_of(status)), status


def _decode_numpy(frames: FrameBatch, macs: bool) -> Decoded:
    from flowd.core.decode_numpy import decode_numpy  # only where the compiled decoder is missing or turned off

    return decode_numpy(frames, macs)


def _compiled_extract() -> Callable[..., None] | None:
    """flowd.native._fastpath.extract, unless it is not built, FLOWD_NO_FASTPATH=1, or its codes differ."""
    extract: Callable[..., None] | None = compiled(
        "extract", SLOW=SLOW, DROP_CODES={r.value: code for r, code in DROP_CODE.items()})
    return extract


_EXTRACT = _compiled_extract()


def _extract_all(frames: FrameBatch, extract: Callable[..., None], macs: bool) -> tuple[PacketBatch, U8]:
    """flowd.native._fastpath.extract on every frame (rows it leaves done by ``decode_rows``): a row per frame, and
    each frame's status."""
    n = len(frames)
    buf, off, cap = frame_arrays(frames)
    full = PacketBatch(
        key=np.empty((n, KEY_BYTES), np.uint8), length=np.empty(n, np.uint32), ts=frames.ts,
        tcp_flags=np.empty(n, np.uint8), ttl=np.empty(n, np.uint8), vlan=np.empty(n, np.uint16),
        inner_vlan=np.empty(n, np.uint16), mpls=np.empty((n, MPLS_KEPT), np.uint32),
        mac=np.empty((n, MAC_BYTES), np.uint8) if macs else None)
    status = np.empty(n, np.uint8)
    extract(buf, off, np.ascontiguousarray(frames.caplen, np.uint32),
            np.ascontiguousarray(frames.linktype, np.uint16), np.ascontiguousarray(frames.ifindex, np.uint32),
            np.ascontiguousarray(frames.wirelen, np.uint32), full.key, full.length, full.tcp_flags, full.ttl,
            full.vlan, full.inner_vlan, full.mpls, status, full.mac)
    slow_rows = np.flatnonzero(status == SLOW)
    if slow_rows.size:
        part = decode_rows(frames, buf, off, cap, slow_rows, status)
        at = part.rows
        full.key[at], full.length[at], full.tcp_flags[at], full.ttl[at] = (
            part.key, part.length, part.tcp_flags, part.ttl)
        if part.vlan is not None and part.inner_vlan is not None and part.mpls is not None:  # always, from decode_rows
            full.vlan[at], full.inner_vlan[at], full.mpls[at] = part.vlan, part.inner_vlan, part.mpls
        if full.mac is not None and part.mac is not None:
            full.mac[at] = part.mac
    return full, status


def _decode_compiled(frames: FrameBatch, extract: Callable[..., None], macs: bool = False) -> Decoded:
    """``decode`` with flowd.native._fastpath.extract doing every frame; rows it leaves go to ``decode_rows``."""
    full, status = _extract_all(frames, extract, macs)
    return _selected(full, status, frames)


def _selected(full: PacketBatch, status: U8, frames: FrameBatch) -> Decoded:
    """The accounted rows of ``_extract_all``'s result."""
    accounted = status == OK
    if bool(accounted.all()):
        full.ts = frames.ts.copy()
        return Decoded(packets=full, drops={})
    return Decoded(packets=full.take(accounted), drops=drops_of(status))
