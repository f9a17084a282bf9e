"""A stand-in for flowd's control server in shell tests: a real Unix-socket NDJSON server, run in a thread,
answering each method from a dict (a test double for the daemon, not the daemon)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowd.control.protocol import (
    ErrorCode,
    ProtocolError,
    Request,
    Response,
    RpcError,
    decode_request,
    encode_response,
)

Answer = Any | RpcError | Callable[[dict[str, Any]], Any]


class DaemonDouble:
    """Serves `results[method]` (a value, an `RpcError`, or a function of the params) on `path`."""

    def __init__(self, path: Path, results: dict[str, Answer]) -> None:
        self.path = path
        self.results = dict(results)
        self.requests: list[Request] = []
        self.silent: set[str] = set()  # methods that never get a reply
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> DaemonDouble:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_unix_server(self._handle, path=str(self.path)))
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="daemon-double", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close the listener and every connection (clients see EOF), and remove the socket file."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None
        self.path.unlink(missing_ok=True)

    def _answer(self, request: Request) -> Response:
        answer = self.results.get(request.method)
        if answer is None:
            return Response.failure(request.id, ErrorCode.UNKNOWN_METHOD, f"unknown method '{request.method}'")
        if isinstance(answer, RpcError):
            return Response.failure(request.id, answer.code, answer.message)
        if callable(answer):
            return Response.success(request.id, answer(request.params))
        return Response.success(request.id, answer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                try:
                    request = decode_request(line)
                except ProtocolError as exc:
                    writer.write(encode_response(exc.to_response()))
                    continue
                self.requests.append(request)
                if request.method in self.silent:
                    continue
                writer.write(encode_response(self._answer(request)))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
