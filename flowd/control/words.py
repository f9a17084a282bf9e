"""The words the shell prints for what the daemon counts: export formats and drop counters.

Shared by the shell's renderers, the control methods and batch mode's summary; imports nothing, so the
summary of `flowd --read` does without the control protocol.
"""

from __future__ import annotations

import re
from typing import Final

# Export formats as `show services accounting status` names them (Junos's words), by flowd's version code.
EXPORT_FORMATS: Final = {"5": "cflowd v5", "8": "cflowd v8", "9": "Version 9", "ipfix": "IP-FIX"}
# Words of drop-counter names printed in capitals (`bad-ip-header` -> `bad IP header`).
_ACRONYMS: Final = {"ip": "IP", "ipv4": "IPv4", "ipv6": "IPv6", "tcp": "TCP", "udp": "UDP", "icmp": "ICMP"}


def drop_words(name: str) -> str:
    """A drop counter's name (`not-ipv4`, `bad-ip-header`) in the words the shell and the batch summary print."""
    return " ".join(_ACRONYMS.get(w.lower(), w) for w in re.split(r"[-_ ]+", name))
