"""v5 records carry the route columns: next hop, output ifIndex, AS (AS_TRANS above 65535), masks (dpkt decodes)."""

from __future__ import annotations

import dpkt  # type: ignore[import-untyped]
import numpy as np

from flowd.export.v5 import V5Header, encode_v5
from tests.routing.test_v8 import BOOT, NOW, ground_truth


def test_v5_fields_from_routes() -> None:
    recs, routes, flows = ground_truth(40, seed=7)
    routes.next_hop[:, 10:12] = 0xFF
    routes.next_hop[:, 12:16] = np.arange(40, dtype=np.uint8)[:, None]
    (datagram, second) = encode_v5(recs.with_routes(routes), now=NOW, boot=BOOT, sequence=0, header=V5Header())
    rows = dpkt.netflow.Netflow5(datagram).data + dpkt.netflow.Netflow5(second).data
    for i, (rec, f) in enumerate(zip(rows, flows)):
        assert (rec.src_mask, rec.dst_mask) == (f["src_mask"], f["dst_mask"])
        assert rec.src_as == (23456 if int(f["src_origin"]) > 65535 else f["src_origin"])
        assert rec.dst_as == f["dst_origin"]
        assert rec.input_iface == (0 if int(f["input"]) > 65535 else f["input"])
        assert rec.output_iface == f["output"]
        assert rec.next_hop == i * 0x01010101  # each of the four bytes is i
    peer = encode_v5(recs.with_routes(routes.as_type(True)), now=NOW, boot=BOOT, sequence=0, header=V5Header())
    assert {r.src_as for r in dpkt.netflow.Netflow5(peer[0]).data} == {65001}


def test_v5_without_routes_keeps_the_capture_interface() -> None:
    recs, _, _ = ground_truth(3, seed=8)
    (datagram,) = encode_v5(recs, now=NOW, boot=BOOT, sequence=0, header=V5Header())
    rec = dpkt.netflow.Netflow5(datagram).data[0]
    assert (rec.input_iface, rec.output_iface, rec.src_as, rec.dst_as, rec.src_mask, rec.next_hop) == (1, 0, 0, 0, 0, 0)
