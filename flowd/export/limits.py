"""Numeric limits the export formats share: 32-bit header fields, and the datagram size every UDP export keeps to."""

from __future__ import annotations

from typing import Final

U32_MAX: Final = 0xFFFFFFFF  # sequence numbers, unix_secs, counters and ids in v5/v9/IPFIX headers wrap or saturate here
DATAGRAM_SIZE: Final = 1400  # bytes per v9/IPFIX datagram: below a 1500-byte MTU with IPv6 and UDP headers
