"""The OpenMetrics endpoint (`flowd metrics { listen ADDRESS; port N; }`): the shows' counters for Prometheus.

Every value comes from the same control methods the shell calls (``methods.call``), read at scrape
time, so a scrape equals `show services accounting flow | errors | memory | status` at that moment.
Names and labels are stable and documented in docs/metrics.md. The exposition is prometheus_client's
(OpenMetrics when the scraper asks for it, else the Prometheus text format); the HTTP side is a small
asyncio server that answers ``GET /metrics`` (and ``HEAD``), one request per connection, with bounded
request size and time, so a bad client costs one short-lived connection and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.exposition import generate_latest as text_format
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_TYPE,
)
from prometheus_client.openmetrics.exposition import (
    generate_latest as openmetrics_format,
)
from prometheus_client.registry import Collector, CollectorRegistry

from flowd.control import methods
from flowd.runtime.probe import Probe

log = logging.getLogger(__name__)

MAX_REQUEST: Final = 8192  # bytes of request line and headers
REQUEST_TIMEOUT: Final = 5.0  # seconds a client may take to send its request
SCRAPED: Final = ("accounting.flow", "accounting.errors", "accounting.memory", "accounting.status")
SEED_DROPS: Final = {"no_memory": "no-memory", "not_ip": "not-ip", "not_ipv4": "not-ipv4",
                     "header_too_small": "header-too-small"}


@dataclass(frozen=True, slots=True)
class Simple:
    """One metric read from one field of one method's interface block."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str
    method: str
    field: str


SIMPLE: Final = (
    Simple("flowd_flow_packets", "counter", "Sampled packets accounted into flows", "accounting.flow",
           "flow_packets"),
    Simple("flowd_flow_bytes", "counter", "Bytes of the sampled packets accounted into flows", "accounting.flow",
           "flow_bytes"),
    Simple("flowd_flows_active", "gauge", "Flows in the flow cache now", "accounting.flow", "active_flows"),
    Simple("flowd_flows_created", "counter", "Flows ever created in the flow cache", "accounting.flow",
           "total_flows"),
    Simple("flowd_flows_exported", "counter", "Flow records sent to the flow servers", "accounting.flow",
           "flows_exported"),
    Simple("flowd_flow_packets_exported", "counter", "Export datagrams or messages sent", "accounting.flow",
           "flow_packets_exported"),
    Simple("flowd_flow_table_allocations", "counter", "Flows allocated in the flow cache", "accounting.memory",
           "allocation_count"),
    Simple("flowd_flow_table_frees", "counter", "Flows freed from the flow cache", "accounting.memory",
           "free_count"),
    Simple("flowd_flow_table_peak_flows", "gauge", "Most flows ever cached at once", "accounting.memory",
           "maximum_allocated"),
    Simple("flowd_flow_table_memory_used_bytes", "gauge", "Memory the flow cache holds", "accounting.memory",
           "memory_used"),
    Simple("flowd_flow_table_memory_free_bytes", "gauge", "Memory the flow cache may still take (max-flows)",
           "accounting.memory", "memory_free"),
    Simple("flowd_flow_table_allocation_failures", "counter", "Flows refused because the cache was full",
           "accounting.errors", "allocation_failures"),
    Simple("flowd_route_records", "gauge", "Routes known to the probe (status Route record count)",
           "accounting.status", "route_record_count"),
)
OVERLOADS: Final = {"memory": "memory_overload", "pps": "pps_overload", "bps": "bps_overload"}


def _block(results: Mapping[str, Any], method: str) -> Mapping[str, Any]:
    result = results[method]
    blocks = result.get("interfaces")
    return blocks[0] if blocks else result  # type: ignore[no-any-return]


def _family(kind: str, name: str, help_: str, labels: Iterable[str] = ()) -> CounterMetricFamily | GaugeMetricFamily:
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, help_, labels=list(labels))


def families(results: Mapping[str, Any]) -> Iterator[Metric]:
    """The metric families of one scrape, from the methods' results (keyed by method name)."""
    for spec in SIMPLE:
        fam = _family(spec.kind, spec.name, spec.help)
        fam.add_metric([], _block(results, spec.method)[spec.field])
        yield fam
    flow = _block(results, "accounting.flow")
    expired = CounterMetricFamily("flowd_flows_expired", "Flows ended by a timeout", labels=["reason"])
    expired.add_metric(["inactive"], flow["flows_inactive_timed_out"])
    expired.add_metric(["active"], flow["flows_active_timed_out"])
    yield expired
    errors = _block(results, "accounting.errors")
    drops = CounterMetricFamily("flowd_drops", "Frames not accounted, by reason (the errors show)",
                                labels=["reason"])
    for field, reason in SEED_DROPS.items():
        drops.add_metric([reason], errors[field])
    for reason, count in sorted(errors["other_drops"].items()):
        drops.add_metric([reason], count)
    yield drops
    overload = GaugeMetricFamily("flowd_overload", "1 while the errors show says Yes", labels=["kind"])
    for kind, field in OVERLOADS.items():
        overload.add_metric([kind], int(bool(errors[field])))
    yield overload
    failures = CounterMetricFamily("flowd_export_failures", "Export datagrams or messages that could not be sent",
                                   labels=["flow_server", "family"])  # one server may serve both families
    for row in errors["export_failures"]:
        failures.add_metric([row["flow_server"], row["family"]], row["failures"])
    yield failures
    kernel_packets = CounterMetricFamily("flowd_capture_kernel_packets", "Frames the kernel offered a capture ring",
                                         labels=["interface", "linux_interface", "worker"])
    kernel_drops = CounterMetricFamily("flowd_capture_kernel_drops", "Frames a capture ring dropped",
                                       labels=["interface", "linux_interface", "worker"])
    for row in errors["kernel_statistics"]:
        labels = [row["interface"], row["linux_interface"], str(row["worker"])]
        kernel_packets.add_metric(labels, row["packets"])
        kernel_drops.add_metric(labels, row["drops"])
    yield kernel_packets
    yield kernel_drops
    status = _block(results, "accounting.status")
    up = GaugeMetricFamily("flowd_capture_up", "1 while a captured interface is up", labels=["interface"])
    for capture in status["captures"]:
        up.add_metric([capture["interface"]], int(capture["state"] == "up"))
    yield up


class _Scrape(Collector):
    """A registry collector that hands out one scrape's prebuilt families."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        self.results = results

    def collect(self) -> Iterable[Metric]:
        return families(self.results)


async def scrape(probe: Probe, now: Callable[[], float]) -> dict[str, Any]:
    """Every method the metrics read, called as the shell would (capture workers included)."""
    return {method: await methods.call(probe, method, {}, now) for method in SCRAPED}


def exposition(results: Mapping[str, Any], accept: str) -> tuple[bytes, str]:
    """(body, content type) for a scrape; OpenMetrics when the Accept header asks for it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(results))
    if "application/openmetrics-text" in accept:
        return openmetrics_format(registry), OPENMETRICS_TYPE  # type: ignore[no-untyped-call]
    return text_format(registry), CONTENT_TYPE_LATEST


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8",
              head: bool = False) -> bytes:
    headers = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
               f"Connection: close\r\n\r\n")
    return headers.encode() + (b"" if head else body)


class MetricsServer:
    """Serve ``GET /metrics`` on ``host:port`` while the daemon runs (an async context manager)."""

    def __init__(self, host: str, port: int, probe: Probe, now: Callable[[], float]) -> None:
        self.host, self.port, self.probe, self.now = host, port, probe, now
        self._server: asyncio.Server | None = None
        self.requests = 0
        self.bad_requests = 0

    async def __aenter__(self) -> MetricsServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_REQUEST)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("metrics on http://%s:%d/metrics", self.host if ":" not in self.host else f"[{self.host}]",
                 self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
                self.bad_requests += 1
                writer.write(_response("400 Bad Request", b"bad request\n"))
                return
            writer.write(await self._answer(head))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> bytes:
        try:
            lines = head.decode("ascii").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = dict(line.split(":", 1) for line in lines[1:] if line)
        except ValueError:
            self.bad_requests += 1
            return _response("400 Bad Request", b"bad request\n")
        if not version.startswith("HTTP/1."):
            self.bad_requests += 1
            return _response("505 HTTP Version Not Supported", b"HTTP/1.x only\n")
        if method not in ("GET", "HEAD"):
            return _response("405 Method Not Allowed", b"GET or HEAD\n")
        if target.split("?", 1)[0] != "/metrics":
            return _response("404 Not Found", b"try /metrics\n", head=method == "HEAD")
        self.requests += 1
        accept = next((v for k, v in headers.items() if k.strip().lower() == "accept"), "")
        try:
            body, content_type = exposition(await scrape(self.probe, self.now), accept)
        except Exception:
            log.exception("metrics scrape failed")
            return _response("500 Internal Server Error", b"scrape failed; see the daemon log\n")
        return _response("200 OK", body, content_type, head=method == "HEAD")
