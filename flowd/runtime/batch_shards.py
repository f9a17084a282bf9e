"""Batch mode on several cores: the flow cache split by flow key across worker processes, one exporter.

``flowd --read FILE --workers N`` forks N-1 shard processes beside the main one. The frames are
decoded once: every process, the main one included, takes its turn decoding the file's batches (in a
thread of its own) and hands every shard the rows whose flow-key hash (``shard_of``) is its own,
through shared memory (flowd.runtime.batch_chunks, flowd.runtime.shard_rows). Each
process runs its own Pipeline on its rows, batch by batch in file order, with the same ``now`` (the
latest packet time so far) as a single cache would, so timeouts, first and last times and FIN/RST
end flows exactly as in one process. For every batch each shard returns the flows that batch ended
and the flows ``expire(now)`` ended; the main process joins the shards' flows of each kind, family
by family, and exports them in one call, as the one-process run does. So the export holds the same
flows, in export calls of the same sizes, hence datagrams of the same sizes with the same sequence
numbers; what may differ is the order of the records inside one export call (and so which of them
share a datagram): the main shard's come first, then each other shard's, each in its own table's
order. The end-of-file flush is exported in chunks of ``chunk`` flows per family, as the one-process
run does; it streams (each shard sends its flush in pieces that the main process takes as the export
goes), so no process ever holds every flow twice.

Frames and decode drops are counted by the main process (every batch's ``Chunk`` carries them); each
shard counts what its own packets did (sampled, filtered, flows), and the summary sums them.

When it is not used (flowd.runtime.batch_plan's ``workers_for``): a file under SPLIT_MIN_BYTES when
``--workers`` is not given, reading standard input (one reader only), and sampling that depends on the
order of all packets (1-in-N with N > 1, run-length, a packets-per-second cap), whose decisions a shard
seeing only its own packets could not repeat. A shard process ends with the main one, however that ends. The flow cache's max-flows is split between the shards, as with capture
workers, so a full cache can evict differently.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import queue
import signal
import threading
import traceback
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowd.capture.files import open_capture
from flowd.config.schema import Config
from flowd.core.frame_rules import Decoded
from flowd.core.pipeline import Pipeline
from flowd.core.stats import IngestStats
from flowd.model.batch import FlowRecords
from flowd.runtime.batch_chunks import End, Exchange, ExchangeFailed, Producer, own_rows
from flowd.runtime.batch_plan import Step, flows_created_by
from flowd.runtime.parent_death import die_with_parent
from flowd.runtime.shard import merge_ingest, shard_config

if TYPE_CHECKING:  # multiprocessing is imported when shards start: a one-process run does without it
    import multiprocessing.connection
    import multiprocessing.process

Flows = dict[str, FlowRecords]


@dataclass(frozen=True, slots=True)
class _Batch:
    ended: Flows  # flows the batch's packets ended
    expired: Flows  # flows expire(now) ended after it


@dataclass(frozen=True, slots=True)
class _Flushed:
    family: str
    records: FlowRecords  # a piece of the end-of-file flush


@dataclass(frozen=True, slots=True)
class _Done:
    stats: IngestStats
    flows_created: int


LAG = 4  # batches the main process's shard may run ahead of the export (see Shards.steps)
FLUSH_PIECE = 8192  # flows per _Flushed message: the flush streams, so no process holds every flow twice
PIPE_BYTES = 1 << 20  # a result pipe's buffer (Linux's limit for unprivileged users): about one flush piece


class _Outbox:
    """A shard process's results during the file, sent to the main process in order by a thread of their own.

    A send waits while the pipe is full. Were the shard's own thread to send, a result larger than the
    pipe would hold it there while the main process waits for a batch whose slot this shard has not given
    back yet (it gives a slot back once its result is sent): both would wait for ever. The queue stays
    short: a shard runs at most SLOTS batches per producer ahead of the main process (every slot needs the
    main process's credit too), which reads every result at most LAG batches late.
    """

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(conn,), name="flowd-results", daemon=True)
        self._thread.start()

    def _run(self, conn: multiprocessing.connection.Connection) -> None:
        while (message := self._queue.get()) is not self:
            conn.send(message)

    def put(self, message: object) -> None:
        self._queue.put(message)

    def close(self) -> None:
        """Send what is queued, then stop (again: nothing)."""
        if self._thread.is_alive():
            self._queue.put(self)
            self._thread.join()


def _serve(path: str, cfg: Config, index: int, exchange: Exchange, batch_size: int,
           conn: multiprocessing.connection.Connection, parent: int) -> None:
    """A shard process: decode its batches for every shard, run its rows of every batch, results to the main process."""
    die_with_parent(parent, signal.SIGKILL)  # a main process killed outright must not leave shards waiting on it
    outbox = _Outbox(conn)
    try:
        mailbox, senders = exchange.keep(index)
        pipeline = Pipeline(shard_config(cfg, exchange.processes))
        now = 0.0
        with open_capture(path) as reader:
            producer = Producer(reader, batch_size, index, exchange, senders)
            try:
                for item in own_rows(mailbox, exchange):
                    if isinstance(item, End):
                        if item.failure:
                            raise ExchangeFailed(item.failure)
                        break  # the main process reports a damaged file
                    chunk, rows = item
                    now = max(now, chunk.ts_max)
                    ended = pipeline.account(Decoded(rows.packets, {}), 0, now)
                    outbox.put(_Batch(ended, pipeline.expire(now)))
            finally:
                producer.stop()
        outbox.close()  # the flush is sent from here, piece by piece as the export takes them: it streams
        for family, records in pipeline.flush_chunks(now, FLUSH_PIECE):
            conn.send(_Flushed(family, records))
        conn.send(_Done(pipeline.stats, flows_created_by(pipeline)))
    except BaseException:  # the main process must hear of it, not wait forever
        outbox.close()
        conn.send(traceback.format_exc())
    finally:
        conn.close()


class ShardError(Exception):
    """A shard process failed; ``str()`` holds its traceback."""


class Shards:
    """The main process's own shard (index 0) and N-1 forked shard processes (see the module docstring)."""

    def __init__(self, path: str, cfg: Config, shards: int, batch_size: int) -> None:
        self.shards = shards
        self.batch_size = batch_size
        import multiprocessing
        self.pipeline = Pipeline(shard_config(cfg, shards))
        context = multiprocessing.get_context("fork")
        self._exchange = Exchange(context, shards, tuple(range(shards)), batch_size, bool(self.pipeline.macs))
        self._conns: list[multiprocessing.connection.Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        for index in range(1, shards):
            ours, theirs = context.Pipe(duplex=False)
            with contextlib.suppress(OSError):  # a shard may write a flush piece ahead of the export
                fcntl.fcntl(ours.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            proc = context.Process(target=_serve, name=f"flowd-shard-{index}", daemon=True,
                                   args=(path, cfg, index, self._exchange, batch_size, theirs, os.getpid()))
            proc.start()
            theirs.close()
            self._conns.append(ours)
            self._procs.append(proc)
        self._mailbox, self._senders = self._exchange.keep(0)
        self._reader = open_capture(path)
        self._producer = Producer(self._reader, batch_size, 0, self._exchange, self._senders)
        self.stats = IngestStats()
        self.flows_created = 0

    def _receive(self, conn: multiprocessing.connection.Connection) -> object:
        try:
            message: object = conn.recv()
        except EOFError:
            raise ShardError("a shard process exited without its results") from None
        if isinstance(message, str):
            raise ShardError(message)
        return message

    def steps(self) -> Generator[Step, None, None]:
        """Every batch accounted in every shard: the flows it ended, then the flows expired, joined by family.

        The main process's own shard runs up to LAG batches ahead of the export, which waits for the other
        shards' flows of a batch only when it must (so a shard process that the scheduler holds back a
        moment does not hold up the main one).
        """
        now = 0.0
        waiting: collections.deque[tuple[float, float, Flows, Flows]] = collections.deque()
        try:
            for item in own_rows(self._mailbox, self._exchange):
                if isinstance(item, End):
                    if item.failure:
                        raise ShardError(item.failure)
                    while waiting:
                        yield self._joined_step(*waiting.popleft())
                    if item.error:
                        yield Step(now, now, [], item.error)
                    return
                chunk, rows = item
                now = max(now, chunk.ts_max)
                waiting.append((chunk.ts_min, now, self.pipeline.account(rows, chunk.frames, now),
                                self.pipeline.expire(now)))
                while waiting and (len(waiting) > LAG or all(conn.poll() for conn in self._conns)):
                    yield self._joined_step(*waiting.popleft())
        except ExchangeFailed as exc:
            raise ShardError(str(exc)) from None

    def _joined_step(self, ts_min: float, now: float, ended: Flows, expired: Flows) -> Step:
        """The main shard's flows of a batch joined with every other shard's (waited for)."""
        ended_parts, expired_parts = [ended], [expired]
        for conn in self._conns:
            reply = self._receive(conn)
            assert isinstance(reply, _Batch)
            ended_parts.append(reply.ended)
            expired_parts.append(reply.expired)
        return Step(ts_min, now, [*_joined(ended_parts, ("inet", "inet6")),
                                  *_joined(expired_parts, self.pipeline.paths)])

    def finish(self, now: float, chunk: int) -> Iterator[tuple[str, FlowRecords]]:
        """Flush every shard; the flows in chunks of ``chunk`` per family, as one cache's flush gives them.

        Streamed: every shard flushes in pieces, family by family, and a piece is asked for only when the
        export has taken the ones before it, so the flush holds a few pieces, never every flow.
        """
        self.flows_created = flows_created_by(self.pipeline)
        done: list[_Done] = []
        streams = [_Pieces(self.pipeline.flush_chunks(now, FLUSH_PIECE))]
        streams += [_Pieces(self._flushed(conn, done)) for conn in self._conns]
        for family in self.pipeline.paths:
            yield from chunked(family, (records for stream in streams for records in stream.of(family)), chunk)
        assert len(done) == len(self._conns) and all(stream.ended for stream in streams)
        self.stats = merge_ingest([self.pipeline.stats, *(d.stats for d in done)])
        self.flows_created += sum(d.flows_created for d in done)

    def _flushed(self, conn: multiprocessing.connection.Connection, done: list[_Done]
                 ) -> Iterator[tuple[str, FlowRecords]]:
        """A shard process's flush pieces; its _Done goes into ``done``."""
        reply = self._receive(conn)
        while isinstance(reply, _Batch):  # the main process stopped early (damaged file): skip the rest
            reply = self._receive(conn)
        while isinstance(reply, _Flushed):
            yield reply.family, reply.records
            reply = self._receive(conn)
        assert isinstance(reply, _Done)
        done.append(reply)

    def close(self) -> None:
        self._producer.stop()
        self._reader.close()
        for conn in self._conns:
            conn.close()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()


class _Pieces:
    """One shard's flush pieces, taken family by family (every shard's pipeline has the families in one order)."""

    def __init__(self, pieces: Iterator[tuple[str, FlowRecords]]) -> None:
        self._pieces = pieces
        self._next = next(pieces, None)

    @property
    def ended(self) -> bool:
        return self._next is None

    def of(self, family: str) -> Iterator[FlowRecords]:
        while self._next is not None and self._next[0] == family:
            yield self._next[1]
            self._next = next(self._pieces, None)


def chunked(family: str, pieces: Iterable[FlowRecords], chunk: int) -> Iterator[tuple[str, FlowRecords]]:
    """A family's flows in exports of ``chunk`` flows (the last one shorter), whatever the pieces' sizes."""
    held: list[FlowRecords] = []
    count = 0
    for records in pieces:
        held.append(records)
        count += len(records)
        while count >= chunk:
            joined = FlowRecords.concat(held)
            yield family, joined.take(slice(0, chunk))  # views: nothing is copied but by concat
            rest = joined.take(slice(chunk, len(joined)))
            held, count = [rest], len(rest)
    if count:
        yield family, FlowRecords.concat(held)


def _joined(parts: list[Flows], order: Mapping[str, object] | tuple[str, ...]) -> Iterator[tuple[str, FlowRecords]]:
    for family in order:
        records = FlowRecords.concat([p[family] for p in parts if family in p])
        if len(records):
            yield family, records
