"""`show services accounting aggregation template` against a real daemon: one block per cached flow of the
families exporting with the template, each equal to what `accounting.flow_detail` reports for that flow."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from control_call import call_raw

from flowd.testing.synth import SynthSpec, write_capture

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

CONFIG = """
services:
  flow-monitoring:
    version-ipfix:
      template:
        v4-flows: {{ipv4-template: true, template-id: 1024}}
        v6-flows: {{ipv6-template: true, template-id: 1030}}
        spare: {{ipv4-template: true, template-id: 1040}}
forwarding-options:
  sampling:
    input: {{rate: 1}}
    family:
      inet:
        output:
          flow-server:
            127.0.0.1: {{port: {port}, version-ipfix: {{template: v4-flows}}, source-address: 127.0.0.1}}
          flow-active-timeout: 1800
          flow-inactive-timeout: 1800
      inet6:
        output:
          flow-server:
            127.0.0.1: {{port: {port}, version-ipfix: {{template: v6-flows}}, source-address: 127.0.0.1}}
          flow-active-timeout: 1800
          flow-inactive-timeout: 1800
"""


class Daemon:
    """A `flowd` replaying a capture at full speed over a real control socket; `cli` runs `flowcli -c`."""

    def __init__(self, tmp: Path, config: Path, capture: Path) -> None:
        self.socket = str(tmp / "flowd.sock")
        self.log = tmp / "flowd.runtime.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flowd", "--config", str(config), "--replay", str(capture),
                 "--replay-speed", "max", "--socket", self.socket],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while "finished after" not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the replay did not finish"
            time.sleep(0.05)

    def cli(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shell", "--socket", self.socket, "-c", command],
                              cwd=REPO, capture_output=True, text=True, timeout=60, check=False)

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        reply: dict[str, Any] = call_raw(self.socket, method, params)
        return reply

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("aggregation")
    capture = tmp / "synth.pcap"
    write_capture(SynthSpec(packets=8_000, flows=800, seed=5, duration=60.0), str(capture))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the flow server: nothing is exported before exit
    sink.bind(("127.0.0.1", 0))
    config = tmp / "flowd.yaml"
    config.write_text(CONFIG.format(port=sink.getsockname()[1]))
    d = Daemon(tmp, config, capture)
    try:
        yield d
    finally:
        status = d.stop()
        sink.close()
        assert status == 0, d.log.read_text()


def full(address: str) -> str:
    """How Junos writes an IPv6 address in this command: eight groups, no `::`, no leading zeros."""
    parsed = ipaddress.ip_address(address)
    if parsed.version == 4:
        return address
    return ":".join(f"{int(group, 16):x}" for group in parsed.exploded.split(":"))


def expected_block(flow: dict[str, Any]) -> dict[str, str]:
    """The `Label: value` pairs the template's block must show for a flow-detail flow."""
    return {
        "Source address": full(flow["source_address"]), "Destination address": full(flow["destination_address"]),
        "Source port": str(flow["source_port"]), "Destination port": str(flow["destination_port"]),
        "Protocol": str(flow["protocol"]), "TOS": str(flow["tos"]), "TCP flags": str(flow["tcp_flags"]),
        "Source mask": str(flow["source_prefix_length"]), "Destination mask": str(flow["destination_prefix_length"]),
        "Input SNMP interface index": str(flow["input_snmp_interface_index"]),
        "Output SNMP interface index": str(flow["output_snmp_interface_index"]),
        "Start time": str(flow["start_time"]), "End time": str(flow["end_time"]),
        "Packet count": str(flow["packets"]), "Byte count": str(flow["bytes"]),
    }


def printed_blocks(text: str) -> list[dict[str, str]]:
    """The flow blocks of the command's output (after its two header lines), each as label -> value."""
    lines = text.splitlines()
    assert lines[0].startswith("  Service Accounting interface: ")
    assert lines[1] == "  Service name: (default sampling)"
    blocks: list[dict[str, str]] = [{}]
    for line in lines[2:]:
        if not line:
            blocks.append({})
            continue
        assert line.startswith("  ") and not line.startswith("   "), line
        for pair in line.strip().split(", "):
            label, value = pair.split(": ", 1)
            blocks[-1][label] = value
    return blocks if blocks != [{}] else []


def cached(d: Daemon, version: int) -> list[dict[str, Any]]:
    reply = d.call("accounting.flow_detail")
    assert reply["ok"], reply
    flows = reply["result"]["interfaces"][0]["flows"]
    return [f for f in flows if ipaddress.ip_address(f["source_address"]).version == version]


@pytest.mark.parametrize(("template", "version"), [("v4-flows", 4), ("v6-flows", 6)])
def test_one_block_per_cached_flow_equal_to_flow_detail(daemon: Daemon, template: str, version: int) -> None:
    want = [expected_block(f) for f in cached(daemon, version)]
    assert len(want) > 50  # both families have plenty of cached flows
    done = daemon.cli(f"show services accounting aggregation template template-name {template} extensive")
    assert done.returncode == 0, done.stderr
    assert printed_blocks(done.stdout) == want  # same flows, same values, same order (largest by bytes first)
    if version == 6:
        assert all(":" in b["Source address"] and "::" not in b["Source address"] for b in printed_blocks(
            done.stdout))


def test_levels_and_limit(daemon: Daemon) -> None:
    want = [expected_block(f) for f in cached(daemon, 4)][:5]
    terse = daemon.cli("sh ser acc ag te template-name v4-flows limit 5")
    assert terse.returncode == 0, terse.stderr
    shown = ("Source address", "Destination address", "Source port", "Destination port", "Protocol", "TOS",
             "TCP flags", "Packet count", "Byte count")
    assert printed_blocks(terse.stdout) == [{k: b[k] for k in shown} for b in want]
    detail = daemon.cli("show services accounting aggregation template template-name v4-flows detail limit 5")
    assert printed_blocks(detail.stdout) == [{k: v for k, v in b.items() if "time" not in k} for b in want]


def test_template_fields_in_the_daemon_reply(daemon: Daemon) -> None:
    reply = daemon.call("accounting.aggregation_template", {"template_name": "v4-flows"})
    assert reply["ok"], reply
    block = reply["result"]["interfaces"][0]
    assert block["template"] == {"name": "v4-flows", "type": "ipv4", "format": "ipfix"}
    flows = block["flows"]
    assert [f["bytes"] for f in flows] == sorted((f["bytes"] for f in flows), reverse=True)
    assert all(f["top_label_address"] == "0.0.0.0" and f["source_mask"] == 32 for f in flows)
    assert all(len(f["mpls_labels"]) == 3 and all(0 <= label < 2**20 for label in f["mpls_labels"]) for f in flows)
    assert any(f["mpls_labels"][0] for f in flows), "the capture's labelled IPv4 flows show their top label"
    spare = daemon.call("accounting.aggregation_template", {"template_name": "spare"})
    assert spare["result"]["interfaces"][0]["flows"] == []  # configured, but no flow server exports with it


def test_unknown_and_missing_template_name_are_errors(daemon: Daemon) -> None:
    unknown = daemon.cli("show services accounting aggregation template template-name nope")
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (1, "", "error: template nope is not configured\n")
    reply = daemon.call("accounting.aggregation_template", {"template_name": "nope"})
    assert reply["error"] == {"code": "bad-params", "message": "template nope is not configured"}
    missing = daemon.cli("show services accounting aggregation template extensive")
    assert (missing.returncode, missing.stderr) == (1, "error: syntax error, expecting <template-name>\n")
    assert os.path.exists(daemon.socket)  # the daemon is still serving
