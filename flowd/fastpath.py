"""The optional compiled fast path (flowd._fastpath, flowd.native._flowtable): whether it is built, enabled
and made from our tables."""

from __future__ import annotations

import importlib
import os
from typing import Any


def compiled(function: str, module: str = "flowd._fastpath", **tables: object) -> Any | None:
    """``<module>.<function>`` (flowd._fastpath unless named), or None when the extension is not built,
    ``FLOWD_NO_FASTPATH=1`` is set, or one of its code tables (``name=expected value``) differs from the caller's, so that its
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
