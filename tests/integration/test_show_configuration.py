"""`show configuration [STATEMENT]`, `| compare rollback N` and the configured names Tab and `?` offer, against a
real daemon on its real socket: scripted (`flowcli -c`) and typed in a real terminal, in operational mode and in
configuration mode."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ptyshell import CONFIG_PROMPT, PROMPT, PtyShell

from flowd.testing.truth import GroundTruth

sys.path.insert(0, str(Path(__file__).parent))
from test_configure import REPO, capture, enter, start, stop_daemons  # noqa: E402,F401  (fixtures)
from test_daemon import Daemon  # noqa: E402

pytestmark = pytest.mark.integration

TEMPLATES = """
services { flow-monitoring { version-ipfix { template ipv4 { ipv4-template; flow-active-timeout 30; } } } }
flowd { routing { snmp-index { lo 7; } } }
"""


def daemon(tmp_path: Path, pcap: Path) -> Daemon:
    """The seed's configuration (its flow server on 127.0.0.1, nobody listening) and an IPFIX template."""
    text = (REPO / "etc" / "seed-sampling.conf").read_text().replace("10.60.2.1", "127.0.0.1") + TEMPLATES
    return start(tmp_path, text, "--replay", str(pcap), "--replay-speed", "max")


def ok(d: Daemon, line: str) -> str:
    done = d.cli(line)
    assert (done.returncode, done.stderr) == (0, ""), line
    return done.stdout


def test_hierarchies_as_text_set_xml_and_json(tmp_path: Path, capture: tuple[Path, GroundTruth]) -> None:
    d = daemon(tmp_path, capture[0])
    assert ok(d, "show configuration forwarding-options sampling input") == "rate 1;\n"
    assert ok(d, "sh conf serv flow-monitoring version-ipfix template ipv4") == \
        "ipv4-template;\nflow-active-timeout 30;\n"
    assert ok(d, "show configuration forwarding-options sampling input rate") == "rate 1;\n"
    assert ok(d, "show configuration interfaces xe-9/9/9") == ""  # not configured: nothing, as Junos
    sets = ok(d, "show configuration forwarding-options family inet output flow-server 127.0.0.1 | display set")
    assert sets.splitlines()[:2] == ["set forwarding-options family inet output flow-server 127.0.0.1 port 2055",
                                     "set forwarding-options family inet output flow-server 127.0.0.1 version 5"]
    root = ET.fromstring(ok(d, "show configuration interfaces ge-2/3/0 | display xml"))
    interface = root.find("configuration/interfaces/interface")
    assert interface is not None and interface.findtext("name") == "ge-2/3/0"
    assert interface.findtext("unit/family/inet/filter/input") == "catch_all"
    data = json.loads(ok(d, "show configuration services | display json"))
    (template,) = data["configuration"]["services"]["flow-monitoring"]["version-ipfix"]["template"]
    assert template == {"name": "ipv4", "ipv4-template": [None], "flow-active-timeout": "30"}
    bad = d.cli("show configuration forwarding-options bogus")
    assert (bad.returncode, bad.stdout, bad.stderr) == (1, "", "error: syntax error: bogus\n")
    d.stop()


def test_compare_rollback_in_both_modes(tmp_path: Path, capture: tuple[Path, GroundTruth]) -> None:
    d = daemon(tmp_path, capture[0])
    missing = d.cli("show configuration | compare rollback 1")
    assert missing.returncode == 1 and missing.stderr == "error: rollback 1 not found (the rollback store holds 0)\n"
    ok(d, 'configure; set forwarding-options sampling input rate 10; commit comment "ten"')
    diff = ["[edit forwarding-options sampling input]", "-   rate 1;", "+   rate 10;"]
    assert ok(d, "show configuration | compare rollback 1").splitlines() == diff
    assert ok(d, "show configuration forwarding-options sampling | compare rollback 1").splitlines() == diff
    assert ok(d, "show configuration interfaces | compare rollback 1") == ""
    assert ok(d, "show configuration | compare rollback 0") == ""
    xml = ET.fromstring(ok(d, "show configuration | compare rollback 1 | display xml"))
    assert xml.findtext("configuration-information/configuration-output") == "\n".join(diff)
    assert json.loads(ok(d, "show configuration | compare rollback 1 | display json"))
    too_old = d.cli("show configuration | compare rollback 49")
    assert too_old.returncode == 1 and too_old.stderr.startswith("error: rollback 49 not found")
    # Configuration mode: the candidate against a stored configuration.
    done = d.cli("configure; set forwarding-options sampling input rate 20; show | compare rollback 1; "
                 "show forwarding-options sampling | compare rollback 0; show | compare rollback 7")
    assert done.returncode == 1
    assert done.stdout.splitlines()[1:] == [*diff[:2], "+   rate 20;", diff[0], "-   rate 10;", "+   rate 20;"]
    assert done.stderr.startswith("error: rollback 7 not found")
    d.stop()


def redrawn(shell: PtyShell, line: str, prompt: str = PROMPT) -> None:
    """Wait until the line is drawn again under a `?` listing: keys typed while the listing is printed reach
    a terminal in cooked mode, which would take Ctrl-U as its own line erase."""
    shell.expect(re.escape(prompt + line))


def test_tab_and_question_mark_in_a_terminal(tmp_path: Path, capture: tuple[Path, GroundTruth]) -> None:
    d = daemon(tmp_path, capture[0])
    shell = PtyShell(Path(d.socket), tmp_path)
    try:
        shell.prompt()
        shell.send("show configuration forwarding-options ?")
        listing = shell.expect(r"\|\s+Pipe through a command\n")
        assert re.search(r"\n  family +Protocol family\n  sampling +Statistical traffic sampling options\n", listing)
        redrawn(shell, "show configuration forwarding-options")
        shell.send("family inet output flow-server \t")
        shell.expect("127.0.0.1")
        shell.send("\r")
        assert "port 2055;\n" in shell.expect(r"version 5;\n")
        shell.prompt()
        shell.send("show firewall filter \t")
        shell.expect("catch_all")
        shell.send("counter ?")
        assert re.search(r"<counter-name> +Name of counter\n  counter1 +Configured counter\n",
                         shell.expect(r"counter1 +Configured counter\n"))
        redrawn(shell, "show firewall filter catch_all counter")
        shell.send("\x15show services accounting aggregation template template-name \t")
        shell.expect("template-name ipv4")
        shell.send("\x15show services accounting flow-detail input-snmp-interface-index ?")
        assert re.search(r"<index> +Input SNMP interface index to match \(0\.\.4294967295\)\n  7 +SNMP index of lo\n",
                         shell.expect(r"SNMP index of lo\n"))
        redrawn(shell, "show services accounting flow-detail input-snmp-interface-index")
        shell.send("\x15show configuration forwarding-options bogus\r")
        out = shell.expect(r"syntax error\.\n")
        assert "\n" + " " * (len(PROMPT) + len("show configuration forwarding-options ")) + "^\n" in out
        enter(shell)
        shell.send("set forwarding-options family inet output flow-server 127.0.0.1 version-ipfix template \t")
        shell.expect("template ipv4")
        shell.send("\x15show | compare ?")
        assert "  rollback             Numeric index of rollback file\n" in shell.expect(r"rollback .*\n")
        redrawn(shell, "show | compare", CONFIG_PROMPT)
        shell.send("\x15quit\r")
        shell.prompt()
    finally:
        shell.close()
    d.stop()
