"""Why a flow ended: ``ExpiryReason`` values are the IPFIX flowEndReason codes (RFC 5102, IE 136)."""

from __future__ import annotations

from enum import IntEnum


class ExpiryReason(IntEnum):
    IDLE_TIMEOUT = 1  # flow-inactive-timeout passed with no packet
    ACTIVE_TIMEOUT = 2  # flow-active-timeout reached while packets still arrive
    END_OF_FLOW = 3  # TCP FIN or RST seen
    FORCED_END = 4  # shutdown, `clear services accounting flow`, end of a capture file
    LACK_OF_RESOURCES = 5  # evicted because the table was full (flowd does not evict; kept for decoders)
