"""The optional compiled fast path (flowd.native._fastpath): whether it is built, enabled and made from our tables."""

from __future__ import annotations

import importlib
import os
from typing import Any


def compiled(function: str, **tables: object) -> Any | None:
    """``flowd.native._fastpath.<function>``, or None when the extension is not built, ``FLOWD_NO_FASTPATH=1``
    is set, or one of its code tables (``name=expected value``) differs from the caller's, so that its
    status codes would be misread."""
    if os.environ.get("FLOWD_NO_FASTPATH") == "1":
        return None
    try:
        module = importlib.import_module("flowd.native._fastpath")
    except ImportError:
        return None
    if any(getattr(module, name, None) != value for name, value in tables.items()):
        return None
    return getattr(module, function, None)
