"""A capture file decoded once by several batch-mode processes: producers take turns, every shard gets its rows.

Of the N processes, the producers (batch mode: every one, the main process included) each walk the whole
file in the same batches (the compiled walk reads only the record headers) and decode batch ``i`` only
when it is their turn (``Exchange.producer_of``), in a second thread (the compiled decoder releases the
GIL). A producer puts the rows into a slot of its shared ring (flowd.runtime.shard_rows), grouped by
owning shard, and sends every process a ``Chunk`` naming the slot, each shard's rows, the batch's frame
count, decode drops and time span: a few numbers per batch, never per packet. Each process then takes
every batch's ``Chunk`` in file order from the producer whose turn it was (``Mailbox``), reads its own
rows in place and gives the slot back. When the file ends (or is damaged) every producer sends ``End``,
and the producer whose turn the next batch would have been is the one whose ``End`` closes the stream,
so each process stops after the same batch.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowd.capture.files import CaptureReader
from flowd.capture.layouts import CaptureError
from flowd.core.decode import decode_unselected
from flowd.core.frame_rules import Decoded
from flowd.model.drops import DropReason
from flowd.runtime.shard_rows import Credits, RowSlots

if TYPE_CHECKING:  # multiprocessing is imported when shards start: a one-process run does without it
    from multiprocessing.connection import Connection
    from multiprocessing.context import BaseContext

SLOTS = 3  # slots in each producer's ring: how far a producer may decode ahead of the slowest shard


@dataclass(frozen=True, slots=True)
class Chunk:
    """One decoded batch: where each shard's rows are, and what the batch's frames were."""

    index: int  # the batch's position in the file
    producer: int
    slot: int
    starts: tuple[int, ...]  # per shard: its first row in the slot
    counts: tuple[int, ...]  # per shard: its rows
    frames: int
    drops: dict[DropReason, int]  # frames decode did not account, by reason
    ts_min: float  # over every frame of the batch, accounted or not
    ts_max: float


@dataclass(frozen=True, slots=True)
class End:
    """A producer reached the end of the file: cleanly, at damage (``error``), or by failing (``failure``)."""

    error: str | None = None  # the CaptureError's text: the file is damaged after the last batch
    failure: str | None = None  # a traceback: the producer itself failed


class ExchangeFailed(Exception):
    """A process of the exchange failed or went away; ``str()`` says how."""


Message = Chunk | End


class Mailbox:
    """How one process receives Chunks: a queue from its own producer thread, a pipe from each other process."""

    def __init__(self, index: int, local: queue.Queue[Message], pipes: dict[int, Connection]) -> None:
        self.index = index
        self._local = local
        self._pipes = pipes

    def receive(self, producer: int) -> Message:
        if producer == self.index:
            return self._local.get()
        try:
            message: Message = self._pipes[producer].recv()
        except EOFError:
            raise ExchangeFailed(f"batch-mode process {producer} exited in the middle of the file") from None
        return message


class Exchange:
    """The slots, credits and pipes of N processes; made before the fork, then each process keeps its own ends."""

    def __init__(self, context: BaseContext, processes: int, producers: tuple[int, ...], capacity: int,
                 macs: bool) -> None:
        self.processes = processes
        self.producers = producers
        self.macs = macs  # the packets carry their MAC addresses (Pipeline.macs)
        self.rows = RowSlots(processes, producers, SLOTS, capacity, macs)
        self.credits = Credits.make(context, processes, producers, SLOTS)
        # pipes[(p, q)]: producer p to process q (p != q)
        self._pipes = {(p, q): context.Pipe(duplex=False) for p in producers
                       for q in range(processes) if p != q}
        self._local: queue.Queue[Message] = queue.Queue()

    def producer_of(self, index: int) -> int:
        """The process that decodes batch ``index``: the producers take turns."""
        return self.producers[index % len(self.producers)]

    def slot_of(self, index: int) -> int:
        """The slot of its producer's ring that batch ``index`` goes into."""
        return index // len(self.producers) % SLOTS

    def keep(self, index: int) -> tuple[Mailbox, list[Callable[[Message], None]]]:
        """Close every pipe end process ``index`` does not use; its mailbox and its senders (one per process)."""
        inbox: dict[int, Connection] = {}
        outbox: dict[int, Connection] = {}
        for (p, q), (reader, writer) in self._pipes.items():
            if q == index:
                inbox[p] = reader
            else:
                reader.close()
            if p == index:
                outbox[q] = writer
            else:
                writer.close()
        local = self._local

        def put(message: Message) -> None:
            local.put(message)

        senders: list[Callable[[Message], None]] = []
        if index in self.producers:
            senders = [put if q == index else outbox[q].send for q in range(self.processes)]
        return Mailbox(index, self._local, inbox), senders


class Producer:
    """The thread that walks the file and decodes this process's batches (see the module docstring)."""

    def __init__(self, reader: CaptureReader, batch_size: int, index: int, exchange: Exchange,
                 senders: list[Callable[[Message], None]]) -> None:
        self._args = (reader, batch_size, index, exchange, senders)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flowd-decode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        reader, batch_size, index, exchange, senders = self._args
        shards = exchange.processes
        end = End()
        try:
            batches = (frames for frames in reader.batches(batch_size) if len(frames))
            for i, frames in enumerate(batches):
                if exchange.producer_of(i) != index:
                    continue  # another process decodes it
                decoded, status = decode_unselected(frames, exchange.macs)
                slot = exchange.slot_of(i)
                if not exchange.credits.claim(index, self._stop):
                    return
                starts, counts = exchange.rows.write(index, slot, decoded.packets, shards, status)
                chunk = Chunk(i, index, slot, starts, counts, len(frames), decoded.drops,
                              float(frames.ts.min()), float(frames.ts.max()))
                for send in senders:
                    send(chunk)
        except CaptureError as exc:
            end = End(error=str(exc))
        except BaseException:  # every process must hear of it, not wait for the next batch forever
            end = End(failure=traceback.format_exc())
        for send in senders:
            with contextlib.suppress(BrokenPipeError):  # a process that has already ended needs no End
                send(end)

    def stop(self) -> None:
        """Stop (the reader must outlive the walk) and wait for the thread."""
        self._stop.set()
        self._thread.join()


def own_rows(mailbox: Mailbox, exchange: Exchange) -> Iterator[tuple[Chunk, Decoded] | End]:
    """This process's rows of every batch in file order, as Decoded with the batch's drops; End last.

    The rows are views into the producer's slot: use them before asking for the next batch, which
    gives the slot back.
    """
    me = mailbox.index
    for i in itertools.count():
        message = mailbox.receive(exchange.producer_of(i))
        if isinstance(message, End):
            yield message
            return
        if message.index != i:
            raise ExchangeFailed(f"batch {message.index} arrived where batch {i} was due")
        rows = exchange.rows.rows(message.producer, message.slot, message.starts[me], message.counts[me])
        yield message, Decoded(rows, message.drops)
        exchange.credits.give_back(message.producer, me)
