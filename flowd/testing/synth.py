"""Synthetic traffic with ground truth: writes a realistic mixed capture and returns the exact flows in it.

The capture is a classic pcap (little-endian, microsecond timestamps, LINKTYPE_ETHERNET) built with
numpy: per-packet columns first, then every header field written for a whole chunk of frames at once,
then the records cut out of one buffer. Benchmarks, tests and the daemon's demo mode use it.

What is in it
-------------
Conversations (``SynthSpec.flows`` of them) with heavy-tailed sizes (Pareto shape 1.1, the largest
capped at 3% of the packets); 70/25/5 TCP/UDP/ICMP; IPv4 and IPv6; 802.1Q and QinQ tags; MPLS stacks of
1-3 labels over IPv4 and IPv6; IPv4 with options; IPv6 with a hop-by-hop header; IPv4 and IPv6 UDP
datagrams sent as a first fragment (ports present) plus a non-first fragment (no ports; IPv6 ones carry
a fragment header after any hop-by-hop header, as RFC 8200 orders them); TCP conversations that end
with FIN or RST, some with a last ACK after the FIN; planted idle gaps longer than the inactive timeout;
long conversations that cross the active timeout; ARP frames; damaged frames (cut inside the IP header,
IPv4 with an IHL below 5, or truncated on the wire: a 60-byte frame whose IPv4 total length says 1500,
or a runt that ends inside its TCP header). Sources come from 198.18.0.0/16 and 2001:db8:0::/48, destinations from
198.19.0.0/16 and 2001:db8:1::/48 (RFC 2544 / RFC 3849 ranges; disjoint, so no conversation is the
reverse of another). MAC addresses are 00:00:5e:00:53:xx (RFC 7042). Frames are in timestamp order.

The flow rules (the ground truth; flowd/core/flowtable.py implements the same)
--------------------------------------------------------------------------
* A flow key is (src, dst, proto, sport, dport, ToS/traffic class, input ifindex); the ifindex of a
  capture file is 1, so it never separates packets here and TruthFlow leaves it out.
* bytes = IPv4 total length, or IPv6 payload length + 40. ICMP and ICMPv6: sport 0, dport
  type*256 + code. Non-first fragments and protocols other than TCP/UDP/SCTP/UDP-Lite/ICMP: ports 0.
* A packet at time t of a key with a cached flow (first packet f, last packet l) starts a NEW flow,
  the old one expiring first, when ``t - l > inactive`` or ``t - f >= active``.
* A TCP packet with FIN or RST joins its flow, then the flow ends at once; the next packet of the key
  (the last ACK of a close, say) starts a new flow.
* At the end of the capture every remaining flow is flushed.
* tcp_flags is the OR of the flags of the flow's packets.
* ARP, damaged frames and anything else that cannot be accounted belong to no flow.

Two independent implementations apply these rules to the per-packet truth (TruthPackets):
``truth_flows`` (vectorised, used by write_capture) and ``reference_flows`` (a deliberately plain
per-packet dict model, the oracle the tests hold the other one and flowd's FlowTable to).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from flowd.model.batch import I64, U8
from flowd.model.flowkey import V4_MAPPED_PREFIX
from flowd.testing.frames import Frames, Rows, write_pcap
from flowd.testing.layout import (
    ACK,
    FIN,
    FIN_SHARE_OF_ENDINGS,
    FRAGMENT_PAYLOAD,
    FRAGMENT_PAYLOAD_V6,
    ICMP,
    ICMP_TYPES,
    ICMPV6,
    ICMPV6_TYPES,
    MAX_FLOW_SHARE,
    MIN_FRAME,
    MTU,
    PARETO_SHAPE,
    PROTOCOL_MIX,
    PSH,
    RST,
    SYN,
    TCP,
    TCP_PORTS,
    TOS_MIX,
    UDP,
    UDP_PORTS,
    V4_DST_BASE,
    V4_SRC_BASE,
    V6_DST_PREFIX,
    V6_SRC_PREFIX,
    Bools,
)
from flowd.testing.truth import (
    Encap,
    FrameKind,
    GroundTruth,
    SynthSpec,
    TruthKeys,
    TruthPackets,
    truth_flows,
)

# --- generation -------------------------------------------------------------------------------








def _pick(rng: np.random.Generator, table: Sequence[tuple[int, float]], n: int) -> npt.NDArray[np.int64]:
    values = np.array([v for v, _ in table], np.int64)
    weights = np.array([w for _, w in table], np.float64)
    return values[rng.choice(len(values), size=n, p=weights / weights.sum())]


def _flow_sizes(rng: np.random.Generator, count: int, total: int) -> I64:
    """Packets per conversation: Pareto-distributed, at least 1, capped, summing exactly to ``total``."""
    cap = max(1, int(MAX_FLOW_SHARE * total), math.ceil(total / count))
    raw = (1.0 - rng.random(count)) ** (-1.0 / PARETO_SHAPE)
    sizes: I64 = np.clip(np.floor(raw * (total / raw.sum())), 1, cap).astype(np.int64)
    # count * cap >= total, so there is always room to grow into (or something to shrink).
    while (diff := total - int(sizes.sum())) != 0:
        if diff > 0:  # grow flows in proportion to their size, up to the cap
            room = (sizes < cap) * sizes
            sizes = np.minimum(sizes + rng.multinomial(diff, room / room.sum()), cap)
        else:  # shrink flows in proportion to their size, down to 1
            spare = sizes - 1
            sizes = np.maximum(sizes - rng.multinomial(-diff, spare / spare.sum()), 1)
    return sizes


def _addresses(rng: np.random.Generator, v6: Bools, base4: int, prefix6: bytes) -> U8:
    n = v6.shape[0]
    out = np.zeros((n, 16), np.uint8)
    out[:, :12] = np.frombuffer(V4_MAPPED_PREFIX, np.uint8)
    host4 = (base4 + rng.integers(1, 0xFFFF, n)).astype(">u4").view(np.uint8).reshape(n, 4)
    out[:, 12:] = host4
    m = int(v6.sum())
    if m:
        tail = rng.integers(0, 256, (m, 10), dtype=np.uint8)
        tail[:, 2:6] = 0  # 2001:db8:x:SUBNET::HOST, readable
        tail[:, 9] |= 1  # never the subnet-router anycast address
        out[v6, :6] = np.frombuffer(prefix6, np.uint8)
        out[v6, 6:] = tail
    return out


def _conversations(rng: np.random.Generator, spec: SynthSpec, sizes: I64) -> Rows:
    c = int(sizes.shape[0])
    v6 = rng.random(c) < spec.ipv6_share
    proto = _pick(rng, PROTOCOL_MIX, c)
    icmp = proto == ICMP
    proto[icmp & v6] = ICMPV6
    sport = rng.integers(32768, 61000, c)
    dport = np.where(proto == TCP, _pick(rng, TCP_PORTS, c), _pick(rng, UDP_PORTS, c))
    kinds4, kinds6 = _pick(rng, [(t * 256 + k, w) for (t, k), w in ICMP_TYPES], c), \
        _pick(rng, [(t * 256 + k, w) for (t, k), w in ICMPV6_TYPES], c)
    dport = np.where(icmp, np.where(v6, kinds6, kinds4), dport)
    sport = np.where(icmp, 0, sport)
    rows = Rows(
        version=np.where(v6, 6, 4).astype(np.uint8), proto=proto.astype(np.uint8),
        tos=_pick(rng, TOS_MIX, c).astype(np.uint8), ttl=rng.integers(32, 129, c).astype(np.uint8),
        sport=sport.astype(np.uint16), dport=dport.astype(np.uint16),
        src=_addresses(rng, v6, V4_SRC_BASE, V6_SRC_PREFIX), dst=_addresses(rng, v6, V4_DST_BASE, V6_DST_PREFIX),
        encap=np.zeros(c, np.uint8), vlan=rng.integers(2, 4095, c).astype(np.uint16),
        inner_vlan=rng.integers(2, 4095, c).astype(np.uint16), mpls_depth=np.zeros(c, np.uint8),
        labels=rng.integers(16, 1 << 20, (c, 3)).astype(np.uint32),
        hbh=v6 & (rng.random(c) < spec.hop_by_hop_share), isn=rng.integers(0, 1 << 32, c).astype(np.uint32))
    u = rng.random(c)
    rows.encap[u < spec.qinq_share + spec.vlan_share] = Encap.VLAN
    rows.encap[u < spec.qinq_share] = Encap.QINQ
    mpls = rng.random(c) < spec.mpls_share
    rows.mpls_depth[mpls] = rng.integers(1, 4, int(mpls.sum()))
    for _ in range(100):  # conversations must have distinct keys: redraw the source of duplicates
        flat = np.concatenate([rows.src, rows.dst, rows.sport.astype(">u2").view(np.uint8).reshape(c, 2),
                               rows.dport.astype(">u2").view(np.uint8).reshape(c, 2),
                               rows.proto[:, None], rows.tos[:, None]], axis=1)
        _, first = np.unique(flat, axis=0, return_index=True)
        dup = np.ones(c, np.bool_)
        dup[first] = False
        if not dup.any():
            return rows
        rows.src[dup] = _addresses(rng, rows.version[dup] == 6, V4_SRC_BASE, V6_SRC_PREFIX)
    raise ValueError("too many flows for the address ranges")


def _carriers(rng: np.random.Generator, candidates: I64, n: int) -> I64:
    """``n`` packets (at most every candidate) that become first fragments, in order."""
    if n == 0:  # no draw: a spec without them generates the same bytes as before they existed
        return np.zeros(0, np.int64)
    return np.sort(rng.choice(candidates, size=min(n, candidates.size), replace=False))


def _conversation_packets(rng: np.random.Generator, spec: SynthSpec, rows: Rows, sizes: I64,
                          n_frag: int, n_frag6: int) -> tuple[Frames, I64]:
    """The packets of every conversation; returns them and the indices of first fragments."""
    c = int(sizes.shape[0])
    total = int(sizes.sum())
    conv = np.repeat(np.arange(c, dtype=np.int32), sizes)
    first_idx = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    last_idx = first_idx + sizes - 1
    seq = (np.arange(total) - first_idx[conv]).astype(np.int32)
    tcp = rows.proto[conv] == TCP
    v4 = rows.version[conv] == 4

    # Timing: a start, a span from a per-conversation mean gap, and sometimes one planted idle gap.
    duration = spec.duration * 0.98
    mean_gap = np.exp(rng.uniform(math.log(0.002), math.log(2.0), c))
    gap = np.zeros(c)
    planted = (sizes >= 2) & (rng.random(c) < spec.idle_gap_share)
    if 3.0 * spec.inactive_timeout < duration / 2:
        gap[planted] = spec.inactive_timeout * rng.uniform(1.5, 3.0, int(planted.sum()))
    gap_at = np.where(gap > 0, rng.integers(1, np.maximum(sizes, 2)), np.iinfo(np.int64).max)
    span = np.minimum((sizes - 1) * mean_gap, (duration - gap) * rng.uniform(0.85, 1.0, c))
    begin = rng.random(c) * (duration - span - gap)
    u = rng.random(total)
    u[first_idx] = 0.0
    u[last_idx[sizes >= 2]] = 1.0
    u = u[np.lexsort((u, conv))]
    rel = begin[conv] + u * span[conv] + gap[conv] * (seq >= gap_at[conv])
    us = np.floor(rel * 1e6).astype(np.int64)

    # TCP flags: SYN first, then ACK / PSH-ACK; some conversations close with FIN or RST.
    ending = (rows.proto == TCP) & (sizes >= 2) & (rng.random(c) < spec.fin_rst_share)
    fin = ending & (rng.random(c) < FIN_SHARE_OF_ENDINGS)
    rst = ending & ~fin
    trailing = fin & (sizes >= 3) & (rng.random(c) < spec.trailing_ack_share)
    flags = np.where(rng.random(total) < 0.3, PSH | ACK, ACK).astype(np.uint8)
    flags[first_idx] = SYN
    flags[last_idx[fin & ~trailing]] = FIN | ACK
    flags[last_idx[trailing] - 1] = FIN | ACK
    flags[last_idx[trailing]] = ACK
    flags[last_idx[rst]] = np.where(rng.random(int(rst.sum())) < 0.5, RST, RST | ACK)
    flags[~tcp] = 0

    # First fragments among the IPv4 and IPv6 UDP packets; IPv4 options on a share of the other IPv4 packets.
    udp = rows.proto[conv] == UDP
    carriers4 = _carriers(rng, np.flatnonzero(v4 & udp), n_frag)
    carriers6 = _carriers(rng, np.flatnonzero(~v4 & udp), n_frag6)
    carriers = np.sort(np.concatenate([carriers4, carriers6]))
    frag = np.zeros(total, np.uint8)
    frag[carriers] = 1
    ihl = np.where(v4, 5, 0).astype(np.uint8)
    options = v4 & (frag == 0) & (rng.random(total) < spec.ipv4_options_share)
    ihl[options] = rng.integers(6, 16, int(options.sum()))

    # Lengths: headers plus a payload typical of each protocol.
    l3 = np.where(v4, 4 * ihl.astype(np.int64), 40 + 8 * rows.hbh[conv] + 8 * (frag != 0))
    proto = rows.proto[conv]
    l4 = np.where(proto == TCP, 20, 8)
    least = l3 + l4
    r = rng.random(total)
    tcp_len = np.where(r < 0.4, least, np.where(r < 0.8, MTU, rng.integers(least, MTU + 1)))
    tcp_len = np.where(seq == 0, least, tcp_len)
    tcp_len = np.where((flags & (FIN | RST)) != 0, least, tcp_len)
    tcp_len[last_idx[trailing]] = least[last_idx[trailing]]
    udp_len = np.exp(rng.uniform(math.log(28), math.log(MTU), total)).astype(np.int64)
    icmp_len = l3 + 8 + 56  # ping-sized
    iplen = np.maximum(np.where(proto == TCP, tcp_len, np.where(proto == UDP, udp_len, icmp_len)), least)
    # A first fragment carries FRAGMENT_PAYLOAD(_V6) bytes of the datagram, its tail the rest.
    part = np.where(v4[carriers], FRAGMENT_PAYLOAD, FRAGMENT_PAYLOAD_V6)
    iplen[carriers] = l3[carriers] + part
    l4len = iplen - l3
    rest = rng.integers(8, FRAGMENT_PAYLOAD + 1, carriers.size)
    six = np.flatnonzero(~v4[carriers])
    if six.size:
        rest[six] = rng.integers(8, FRAGMENT_PAYLOAD_V6 + 1, six.size)
    l4len[carriers] = part + rest
    # TCP sequence numbers advance by the payload (and by 1 for the SYN), as a reader expects.
    advance = np.where(proto == TCP, l4len - 20, 0) + (flags == SYN)
    ends_at = np.cumsum(advance)
    tcp_seq = rows.isn[conv].astype(np.int64) + ends_at - advance - (ends_at - advance)[first_idx][conv]
    frames = Frames(
        kind=np.full(total, FrameKind.PACKET, np.uint8), us=us, row=conv, key=conv.copy(),
        iplen=iplen.astype(np.uint16), ihl=ihl, frag=frag, flags=flags,
        ipid=rng.integers(0, 1 << 16, total).astype(np.uint16), seq=seq,
        tcp_seq=(tcp_seq & 0xFFFFFFFF).astype(np.uint32), l4len=l4len.astype(np.uint16),
        cut=np.zeros(total, np.uint16))
    # The non-first fragments: the rest of each datagram, a few microseconds after its first fragment.
    tail = frames.take(carriers)
    tail.kind[:] = FrameKind.FRAGMENT
    tail.us = tail.us + rng.integers(1, 50, carriers.size)
    tail.iplen = (l3[carriers] + rest).astype(np.uint16)
    tail.frag[:] = 2
    tail.flags[:] = 0
    return Frames.concat([frames, tail]), carriers


def _pseudo_rows(rng: np.random.Generator, n: int, v6: Bools) -> Rows:
    """Attributes for ARP and damaged frames (no conversation; plain Ethernet)."""
    return Rows(
        version=np.where(v6, 6, 4).astype(np.uint8), proto=np.full(n, TCP, np.uint8),
        tos=np.zeros(n, np.uint8), ttl=np.full(n, 64, np.uint8),
        sport=rng.integers(32768, 61000, n).astype(np.uint16), dport=np.full(n, 443, np.uint16),
        src=_addresses(rng, v6, V4_SRC_BASE, V6_SRC_PREFIX), dst=_addresses(rng, v6, V4_DST_BASE, V6_DST_PREFIX),
        encap=np.zeros(n, np.uint8), vlan=np.zeros(n, np.uint16), inner_vlan=np.zeros(n, np.uint16),
        mpls_depth=np.zeros(n, np.uint8), labels=np.zeros((n, 3), np.uint32), hbh=np.zeros(n, np.bool_),
        isn=rng.integers(0, 1 << 32, n).astype(np.uint32))


def _other_frames(rng: np.random.Generator, spec: SynthSpec, first_row: int, n_arp: int,
                  n_cut: int, n_bad: int, n_truncated: int) -> tuple[Rows, Frames]:
    n = n_arp + n_cut + n_bad + n_truncated
    kind = np.repeat(np.array([FrameKind.ARP, FrameKind.CUT, FrameKind.BAD_IHL, FrameKind.TRUNCATED], np.uint8),
                     [n_arp, n_cut, n_bad, n_truncated])
    v6 = (kind == FrameKind.CUT) & (rng.random(n) < 0.3)
    rows = _pseudo_rows(rng, n, v6)
    cut = np.where(v6, rng.integers(1, 40, n), rng.integers(1, 20, n))
    frames = Frames(
        kind=kind, us=np.floor(rng.random(n) * spec.duration * 0.98 * 1e6).astype(np.int64),
        row=np.arange(first_row, first_row + n, dtype=np.int32), key=np.full(n, -1, np.int32),
        iplen=np.where(v6, 60, 40).astype(np.uint16),
        ihl=np.where(kind == FrameKind.BAD_IHL, rng.integers(0, 5, n), 5).astype(np.uint8),
        frag=np.zeros(n, np.uint8), flags=np.full(n, SYN, np.uint8),
        ipid=rng.integers(0, 1 << 16, n).astype(np.uint16), seq=np.zeros(n, np.int32),
        tcp_seq=rows.isn.copy(),
        l4len=np.zeros(n, np.uint16), cut=np.where(kind == FrameKind.CUT, cut, 0).astype(np.uint16))
    # truncated: half are 60-byte frames (46 IP bytes) whose total length says 1500, half runts whose
    # total length says 40 (a bare TCP header) and that end 1-19 bytes into the TCP header
    trunc = np.flatnonzero(kind == FrameKind.TRUNCATED)
    long_claim = rng.random(trunc.size) < 0.5
    frames.iplen[trunc] = np.where(long_claim, MTU, 40)
    frames.cut[trunc] = np.where(long_claim, MIN_FRAME - 14, 20 + rng.integers(1, 20, trunc.size))
    return rows, frames


def _fragment_keys(rows: Rows, frames: Frames, first_key: int) -> TruthKeys:
    """Give non-first fragments their own keys (ports 0); returns the table of those keys."""
    nf = np.flatnonzero(frames.kind == FrameKind.FRAGMENT)
    conv = frames.row[nf]
    flat = np.concatenate([rows.src[conv], rows.dst[conv], rows.proto[conv, None], rows.tos[conv, None]],
                          axis=1)
    if nf.size == 0:
        flat = np.zeros((0, 34), np.uint8)
    uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
    frames.key[nf] = first_key + inverse.reshape(-1)
    k = uniq.shape[0]
    return TruthKeys(src=uniq[:, :16].copy(), dst=uniq[:, 16:32].copy(), sport=np.zeros(k, np.uint16),
                     dport=np.zeros(k, np.uint16), proto=uniq[:, 32].copy(), tos=uniq[:, 33].copy())


def write_capture(spec: SynthSpec, path: str | Path) -> GroundTruth:
    """Generate the traffic ``spec`` describes, write it as a pcap at ``path``, return its ground truth."""
    rng = np.random.default_rng(spec.seed)
    n_arp = round(spec.arp_share * spec.packets)
    n_damaged = round(spec.damaged_share * spec.packets)
    n_frag = round(spec.fragment_share * spec.packets)
    n_frag6 = round(spec.ipv6_fragment_share * spec.packets)
    budget = spec.packets - n_arp - n_damaged - n_frag - n_frag6
    if budget < spec.flows:
        raise ValueError(f"{spec.packets} packets leave {budget} for conversations after ARP, damaged "
                         f"and fragment frames: fewer than the {spec.flows} flows")
    sizes = _flow_sizes(rng, spec.flows, budget)
    rows = _conversations(rng, spec, sizes)
    # Fragments need UDP packets of their version to carry them; any shortfall goes to the largest
    # conversation.
    udp4 = int(sizes[(rows.proto == UDP) & (rows.version == 4)].sum())
    udp6 = int(sizes[(rows.proto == UDP) & (rows.version == 6)].sum())
    if udp4 < n_frag:
        sizes[np.argmax(sizes)] += n_frag - udp4
        n_frag = udp4
    if udp6 < n_frag6:
        sizes[np.argmax(sizes)] += n_frag6 - udp6
        n_frag6 = udp6
    conv_frames, _ = _conversation_packets(rng, spec, rows, sizes, n_frag, n_frag6)
    n_cut = (n_damaged + 2) // 3
    n_bad = (n_damaged + 1) // 3
    n_truncated = n_damaged - n_cut - n_bad
    extra_rows, extra_frames = _other_frames(rng, spec, spec.flows, n_arp, n_cut, n_bad, n_truncated)
    rows = rows.extend(extra_rows)
    frames = Frames.concat([conv_frames, extra_frames])
    conv_keys = TruthKeys(src=rows.src[: spec.flows], dst=rows.dst[: spec.flows],
                          sport=rows.sport[: spec.flows], dport=rows.dport[: spec.flows],
                          proto=rows.proto[: spec.flows], tos=rows.tos[: spec.flows])
    frag_keys = _fragment_keys(rows, frames, spec.flows)
    keys = TruthKeys(*(np.concatenate([getattr(conv_keys, f), getattr(frag_keys, f)])
                       for f in TruthKeys.__slots__))
    frames = frames.take(np.lexsort((np.arange(len(frames.us)), frames.us)))  # time order, stable

    start_us = round(spec.start * 1e6)
    abs_us = start_us + frames.us
    sec, usec = abs_us // 1_000_000, abs_us % 1_000_000
    write_pcap(path, spec.snaplen, rows, frames, sec, usec)

    acc = np.flatnonzero(frames.key >= 0)
    ts = sec[acc].astype(np.float64) + usec[acc].astype(np.uint32) / float(1_000_000)
    packets = TruthPackets(ts=ts, key=frames.key[acc], length=frames.iplen[acc].astype(np.uint32),
                           tcp_flags=frames.flags[acc], frame=acc.astype(np.int64), keys=keys)
    return GroundTruth(
        flows=truth_flows(packets, active=spec.active_timeout, inactive=spec.inactive_timeout),
        frames=len(frames.us), damaged=n_damaged, non_ip=n_arp, header_too_small=n_cut,
        bad_ip_header=n_bad, truncated=n_truncated, packets=packets, active_timeout=spec.active_timeout,
        inactive_timeout=spec.inactive_timeout, spec=spec)
