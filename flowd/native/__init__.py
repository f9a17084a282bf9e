"""The optional compiled extensions (flowd.native._fastpath: decode; flowd.native._flowtable: the flow cache;
flowd.native._ring: reading a capture ring; flowd.native._lpm: route lookups; flowd.native._send: export
datagrams in batches): whether each is built, enabled and made from our tables."""

from __future__ import annotations

import importlib
import os
from typing import Any


def compiled(function: str, module: str = "flowd.native._fastpath", **tables: object) -> Any | None:
    """``<module>.<function>`` (flowd.native._fastpath unless named), or None when the extension is not built, ``FLOWD_NO_FASTPATH=1``
    is set, or one of its code tables (``name=expected value``) differs from the caller's, so that its
    status codes would be misread."""
    if os.environ.get("FLOWD_NO_FASTPATH") == "1":
        return None
    try:
        extension = importlib.import_module(module)
    except ImportError:
        return None
    if any(getattr(extension, name, None) != value for name, value in tables.items()):
        return None
    return getattr(extension, function, None)
