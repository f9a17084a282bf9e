"""Export timestamps in whole epoch milliseconds: dateTimeMilliseconds and sysUptime (v5, v9).

Every export time goes through ``epoch_ms`` (rounded to the microsecond, capture resolution, then
truncated to the millisecond), and sysUptime values are differences of two such whole numbers. So a
collector that rebuilds absolute times from a header (v5: ``unix_secs * 1000 + unix_nsecs / 1e6 -
sys_uptime``; v9: ``unix_secs * 1000 - sys_uptime``) gets exactly ``boot_ms(boot)``, and boot plus
a record's First/Last gives exactly the flowStart/EndMilliseconds IPFIX sends for the same flow: no
fractional boot time to round one way in the header and the other way in the records.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flowd.export.limits import U32_MAX
from flowd.model.batch import F64


def epoch_ms(times: F64) -> npt.NDArray[np.uint64]:
    """Seconds since the epoch → dateTimeMilliseconds (rounded to the µs, then truncated to the ms)."""
    micros = np.round(np.maximum(times, 0.0) * 1e6).astype(np.int64)
    return (micros // 1000).astype(np.uint64)


def instant_ms(when: float) -> int:
    """One time in whole epoch ms (as ``epoch_ms``)."""
    return int(epoch_ms(np.array([when], np.float64))[0])


def boot_ms(boot: float) -> int:
    """The epoch ms of sysUptime 0 (systemInitTimeMilliseconds)."""
    return instant_ms(boot)


def sysuptime_ms(times: F64, boot: float) -> npt.NDArray[np.uint32]:
    """sysUptime of each time: its epoch ms minus boot's, clamped at 0, modulo 2**32."""
    rel = epoch_ms(times).astype(np.int64) - boot_ms(boot)
    return (np.maximum(rel, 0) & U32_MAX).astype(np.uint32)
