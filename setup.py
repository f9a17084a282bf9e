"""Build hook for the optional compiled fast path; every other setting lives in pyproject.toml.

``flowd.native._fastpath`` (flowd/native/_fastpath.c, decode), ``flowd.native._flowtable``
(flowd/native/_flowtable.c, the flow cache, and _live.c, a capture ring's blocks decoded into it),
``flowd.native._ring`` (flowd/native/_ring.c, reading a capture ring), ``flowd.native._lpm``
(flowd/native/_lpm.c, route lookups) and ``flowd.native._send`` (flowd/native/_send.c, export
datagrams sent in batches) are built when a C compiler and the Python headers are
present; ``optional=True`` lets the install go on without it, and flowd then runs its pure
Python/numpy path (the same results, slower).
"""

from __future__ import annotations

from setuptools import Extension, setup  # type: ignore[import-untyped]

setup(ext_modules=[
    Extension("flowd.native._fastpath", ["flowd/native/_fastpath.c"],
              depends=["flowd/native/_decode.h", "flowd/native/_flowkey.h"], optional=True, extra_compile_args=["-O2"]),
    Extension("flowd.native._flowtable", ["flowd/native/_flowtable.c", "flowd/native/_live.c"],
              depends=["flowd/native/_flowtable.h", "flowd/native/_flowkey.h", "flowd/native/_decode.h",
                       "flowd/native/_tpacket.h"],
              optional=True, extra_compile_args=["-O2"]),
    Extension("flowd.native._ring", ["flowd/native/_ring.c"], depends=["flowd/native/_tpacket.h"], optional=True,
              extra_compile_args=["-O2"]),
    Extension("flowd.native._lpm", ["flowd/native/_lpm.c"], optional=True, extra_compile_args=["-O2"]),
    Extension("flowd.native._send", ["flowd/native/_send.c"], optional=True, extra_compile_args=["-O2"]),
])
