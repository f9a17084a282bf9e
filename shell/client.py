"""Async client of the flowd control socket: one connection, request ids, per-call timeouts, reconnect.

The connection is opened on the first call and again on the first call after it was lost, so an
interactive shell picks the daemon up again when it comes back. A background reader matches replies
to pending calls by id (replies may come in any order).
"""

from __future__ import annotations

import asyncio
import errno
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, Self

from flowd.control.protocol import (
    MAX_RESPONSE_LINE,
    Assembly,
    Chunk,
    End,
    ErrorCode,
    ProtocolError,
    Request,
    RequestId,
    Response,
    decode_reply,
    encode_request,
)

DEFAULT_TIMEOUT: Final = 30.0  # seconds a call may wait for its reply
_NOT_RUNNING: Final = frozenset({errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK})


class ClientError(Exception):
    """A call did not produce a result; `str()` is the one line the shell prints after `error: `."""


class DaemonUnavailable(ClientError):
    """The socket could not be connected."""

    def __init__(self, path: Path, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        if exc.errno in _NOT_RUNNING:
            text = f"flowd is not running (cannot connect to {path}: {reason})"
        else:
            text = f"cannot connect to flowd ({path}: {reason})"
        super().__init__(text)
        self.errno = exc.errno


class ConnectionLost(ClientError):
    """The daemon closed the connection (or sent garbage) before replying."""


class RequestTimeout(ClientError):
    """No reply within the timeout."""


class RemoteError(ClientError):
    """The daemon answered with an error reply (a refusal reads `permission denied: REASON`, as on Junos)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"permission denied: {message}" if code == ErrorCode.PERMISSION_DENIED.value else message)
        self.code = code
        self.message = message


class Client:
    """Calls daemon methods over the Unix socket at `path`."""

    def __init__(self, path: Path | str, timeout: float = DEFAULT_TIMEOUT, user: str | None = None) -> None:
        """``user``: call on behalf of this user (the NETCONF server; the daemon trusts it from its own user)."""
        self.path = Path(path)
        self.timeout = timeout
        self.user = user
        self._ids = itertools.count(1)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._pending: dict[int | str, asyncio.Future[Response]] = {}
        self._progress: dict[int | str, asyncio.Event] = {}  # set at each line of a streamed reply
        self._sinks: dict[int | str, asyncio.Queue[Any]] = {}  # streamed results handed on, not assembled
        self._connecting = asyncio.Lock()  # concurrent first calls share one connection

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        """Open the connection (no-op when it is open); raise `DaemonUnavailable`."""
        async with self._connecting:
            if self.connected:
                return
            await self._drop()
            try:
                self._reader, self._writer = await asyncio.open_unix_connection(self.path, limit=MAX_RESPONSE_LINE)
            except OSError as exc:
                raise DaemonUnavailable(self.path, exc) from None
            self._read_task = asyncio.create_task(self._read_replies(self._reader))

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The method's result; raise a `ClientError` subclass when there is none."""
        return await self._call(method, params, None)

    async def parts(self, method: str, params: dict[str, Any] | None = None) -> AsyncIterator[Any]:
        """The method's result as it arrives: first the result (a streamed one with its long list still empty),
        then, for a streamed result, each chunk's rows (a list) in order; raise a `ClientError` subclass when
        the result, or the rest of it, does not come. Nothing is assembled: the caller keeps what it needs."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        call = asyncio.ensure_future(self._call(method, params, queue))
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait((get, call), return_when=asyncio.FIRST_COMPLETED)
                if get.done():
                    yield get.result()
                    continue
                get.cancel()
                while not queue.empty():
                    yield queue.get_nowait()
                result = call.result()  # raises the call's ClientError
                if result is not _STREAMED:
                    yield result
                return
        finally:
            if not call.done():  # abandoned part way: the rest would still come, so the connection goes
                call.cancel()
                await self._drop()

    async def _call(self, method: str, params: dict[str, Any] | None, sink: asyncio.Queue[Any] | None) -> Any:
        was_connected = self.connected
        await self.connect()
        try:
            return await self._call_once(method, params or {}, sink)
        except _WriteFailed:
            if not was_connected:
                raise ConnectionLost("connection to flowd closed") from None
            # The daemon went away between two commands: the request never left, so try a fresh connection.
            await self._drop()
            await self.connect()
            try:
                return await self._call_once(method, params or {}, sink)
            except _WriteFailed:
                raise ConnectionLost("connection to flowd closed") from None

    async def _call_once(self, method: str, params: dict[str, Any], sink: asyncio.Queue[Any] | None) -> Any:
        assert self._writer is not None
        request_id = next(self._ids)
        try:
            data = encode_request(Request(request_id, method, params, self.user))
        except ProtocolError as exc:
            raise RemoteError(exc.code.value, exc.message) from None
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        if sink is not None:
            self._sinks[request_id] = sink
        try:
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (ConnectionError, OSError):
                raise _WriteFailed from None
            response = await self._wait(request_id, future, method)
        finally:
            self._pending.pop(request_id, None)
            self._progress.pop(request_id, None)
            self._sinks.pop(request_id, None)
        if not response.ok:
            assert response.error is not None
            raise RemoteError(response.error.code, response.error.message)
        return response.result

    def _deliver(self, reply: Response | Chunk | End, streams: dict[RequestId, Assembly]) -> Response | None:
        """The response a pending call gets for this line, if any (a stream's parts are assembled first, or handed
        on to the call's sink)."""
        if isinstance(reply, Response):
            if reply.more is not None and reply.id is not None:
                sink = self._sinks.get(reply.id)
                streams[reply.id] = Assembly(reply) if sink is None else _Forward(reply, sink)
                return None
            if reply.id is not None:
                streams.pop(reply.id, None)  # an error ended a stream early
            return reply
        stream = streams.get(reply.id)
        if stream is None:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "rows of a stream that did not start", reply.id)
        progress = self._progress.get(reply.id)
        if progress is not None:
            progress.set()
        if isinstance(reply, Chunk):
            stream.add(reply)
            return None
        del streams[reply.id]
        return stream.finish(reply)

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        reason = "connection to flowd closed"
        streams: dict[RequestId, Assembly] = {}
        try:
            while line := await reader.readline():
                try:
                    response = self._deliver(decode_reply(line), streams)
                except ProtocolError as exc:
                    reason = f"bad reply from flowd: {exc.message}"
                    break
                if response is None:
                    continue
                if response.id is None:
                    # The daemon could not read a request's id: it can only be about one still waiting.
                    for waiting in self._pending.values():
                        if not waiting.done():
                            waiting.set_result(response)
                    continue
                future = self._pending.get(response.id)
                if future is not None and not future.done():
                    future.set_result(response)
        except (ConnectionError, OSError, ValueError, asyncio.LimitOverrunError) as exc:
            reason = f"connection to flowd lost: {exc}"
        self._fail_pending(ConnectionLost(reason))
        if self._writer is not None:
            self._writer.close()

    async def _wait(self, request_id: int, future: asyncio.Future[Response], method: str) -> Response:
        """The reply, however long a streamed one takes, as long as no `timeout` passes without a line of it."""
        progress = self._progress[request_id] = asyncio.Event()
        while True:
            waiter = asyncio.ensure_future(progress.wait())
            try:
                done, _ = await asyncio.wait((future, waiter), timeout=self.timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if future in done:
                return future.result()
            if not done:
                raise RequestTimeout(f"no reply from flowd within {self.timeout:g} s ({method})")
            progress.clear()

    def _fail_pending(self, exc: ClientError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)

    async def _drop(self) -> None:
        writer, task = self._writer, self._read_task
        self._reader = self._writer = None
        self._read_task = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self._fail_pending(ConnectionLost("connection to flowd closed"))

    async def close(self) -> None:
        """Close the connection (the client may connect again later)."""
        await self._drop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


_STREAMED: Final = object()  # what a call whose streamed result went to its sink returns


class _Forward(Assembly):
    """A streamed result handed on part by part to a queue (`Client.parts`) instead of assembled."""

    def __init__(self, head: Response, sink: asyncio.Queue[Any]) -> None:
        super().__init__(head)
        self.sink = sink
        sink.put_nowait(head.result)

    def add(self, chunk: Chunk) -> None:
        self.sink.put_nowait(chunk.rows)
        self.count += len(chunk.rows)

    def finish(self, end: End) -> Response:
        super().finish(end)  # checks the count
        return Response(end.id, True, _STREAMED)


class _WriteFailed(Exception):
    """The request could not be written: the daemon cannot have seen it."""
