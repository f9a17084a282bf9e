"""A capture file read and decoded in a second thread, batch by batch (batch mode in one process)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Final

from flowd.capture.files import CaptureReader
from flowd.capture.layouts import CaptureError
from flowd.core.decode import decode
from flowd.core.frame_rules import Decoded
from flowd.model.batch import FrameBatch

READ_AHEAD: Final = 2  # decoded batches waiting for the flow cache


def decoded_batches(reader: CaptureReader, batch_size: int, macs: bool = False
                    ) -> Iterator[tuple[FrameBatch, Decoded] | CaptureError]:
    """Read and decode in a second thread, so the flow cache works on one batch while the next is decoded.

    ``macs``: the packets carry their MAC addresses (``Pipeline.macs`` says whether any family keeps them).

    The compiled record walk and decoder release the GIL, as numpy does, so the two overlap on two cores.
    A CaptureError ends the stream as its last item.
    """
    out: queue.Queue[tuple[FrameBatch, Decoded] | CaptureError | None] = queue.Queue(maxsize=READ_AHEAD)
    stop = threading.Event()

    def produce() -> None:
        try:
            for frames in reader.batches(batch_size):
                if stop.is_set():
                    return
                if len(frames):
                    out.put((frames, decode(frames, macs)))
        except CaptureError as exc:
            out.put(exc)
        finally:
            out.put(None)

    worker = threading.Thread(target=produce, name="flowd-read", daemon=True)
    worker.start()
    try:
        while (item := out.get()) is not None:
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let the reader see the stop and finish
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()
