"""`flowd --check-config` reports every error of the file, in file order, each as FILE:LINE: path: message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowd.config.diagnosis import MAX_ERRORS

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

# Seven errors, in the file's order; the validator meets them in another (templates, filters, sampling,
# interfaces, flowd), so a first-error checker would report line 28 first and nothing else.
MANY = """\
flowd:
  flow-table: {max-flows: many}
forwarding-options:
  sampling:
    input:
      rate: 0
    family:
      inet:
        output:
          flow-server:
            127.0.0.1: {version: 5}
          flow-active-timeout: 5
          bogus: 1
interfaces:
  ge-2/3/0:
    unit:
      0:
        family:
          inet:
            filter: {input: nope}
firewall:
  family:
    inet:
      filter:
        f1:
          term:
            t:
              then: {sample: maybe}
"""

MANY_ERRORS = [
    "2: flowd.flow-table.max-flows: expected an integer, got many",
    "6: forwarding-options.sampling.input.rate: expected 1..16000000, got 0",
    "11: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.1.port: missing: a flow server needs a "
    "port",
    "12: forwarding-options.sampling.family.inet.output.flow-active-timeout: expected 60..1800, got 5",
    "13: forwarding-options.sampling.family.inet.output.bogus: unknown statement (expected one of: flow-server, "
    "flow-active-timeout, flow-inactive-timeout, interface, aggregate-export-interval, inline-jflow)",
    "20: interfaces.ge-2/3/0.unit.0.family.inet.filter.input: filter nope is not defined under firewall family inet "
    "filter",
    "28: firewall.family.inet.filter.f1.term.t.then.sample: expected a flag (true; delete the statement to turn it "
    "off), got maybe",
]


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowd", "--check-config", "--config", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_every_error_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(MANY)
    done = check(path)
    assert done.returncode == 78
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"{path}:{line}" for line in MANY_ERRORS]


def test_junos_syntax_too(tmp_path: Path) -> None:
    path = tmp_path / "many.conf"
    path.write_text("forwarding-options {\n    sampling {\n        input {\n            rate 0;\n        }\n"
                    "        family inet {\n            output {\n                flow-active-timeout 5;\n"
                    "                flow-server 127.0.0.1 {\n                    port 70000;\n"
                    "                    version 5;\n                }\n            }\n        }\n    }\n}\n"
                    "flowd {\n    flow-table {\n        max-flows 0;\n    }\n}\n")
    done = check(path)
    assert done.returncode == 78
    assert [line.split(": ", 2)[:2] for line in done.stderr.splitlines()] == [
        [f"{path}:4", "forwarding-options.sampling.input.rate"],
        [f"{path}:8", "forwarding-options.sampling.family.inet.output.flow-active-timeout"],
        [f"{path}:10", "forwarding-options.sampling.family.inet.output.flow-server.127.0.0.1.port"],
        [f"{path}:19", "flowd.flow-table.max-flows"],
    ]


def test_a_reference_to_a_bad_entry_is_not_reported_twice(tmp_path: Path) -> None:
    path = tmp_path / "ref.yaml"
    path.write_text("interfaces:\n  eth0:\n    unit:\n      0:\n        family:\n          inet:\n"
                    "            filter: {input: bad name}\n"
                    "firewall:\n  family:\n    inet:\n      filter:\n        bad name:\n          term:\n"
                    "            t: {then: {sample: true}}\n")
    done = check(path)
    assert done.returncode == 78
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_errors_are_capped(tmp_path: Path) -> None:
    path = tmp_path / "capped.yaml"
    filters = "".join(f"        f{i}:\n          term:\n            t: {{then: {{sample: maybe}}}}\n"
                      for i in range(MAX_ERRORS + 5))
    path.write_text(f"firewall:\n  family:\n    inet:\n      filter:\n{filters}")
    done = check(path)
    lines = done.stderr.splitlines()
    assert done.returncode == 78
    assert len(lines) == MAX_ERRORS + 1 and lines[-1] == f"flowd: stopped after {MAX_ERRORS} errors"
    assert [int(line.split(":")[1]) for line in lines[:-1]] == sorted(int(line.split(":")[1]) for line in lines[:-1])


def test_a_syntax_error_is_the_one_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("flowd:\n  flow-table: {max-flows: 5\nforwarding-options: [\n")
    done = check(path)
    assert done.returncode == 78 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"{path}:")
