"""NETCONF over SSH against a real daemon, with real clients: PyEZ (junos-eznc), ncclient in both framings, asyncssh.

Users are real: root (every class) and a user created here in the read group (shows only). Keys are
generated per run; the daemon listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from replayed_daemon import free_tcp_port, replayed_daemon

from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd"), reason="creates a user: needs root and useradd")]


@dataclass
class Netconf:
    port: int
    socket: str
    root_key: Path
    reader: str
    reader_key: Path
    stranger_key: Path


def write_key(path: Path) -> asyncssh.SSHKey:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    return key


@pytest.fixture(scope="module")
def netconf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Netconf]:
    tmp = tmp_path_factory.mktemp("netconf")
    tmp.chmod(0o755)
    tag = uuid.uuid4().hex[:6]
    group, reader = f"fnr{tag}", f"fnu{tag}"
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    subprocess.run(["useradd", "--no-create-home", "--no-user-group", "--shell", "/usr/sbin/nologin",
                    "--groups", group, reader], check=True, capture_output=True)
    keys = tmp / "keys"
    keys.mkdir()
    root_key, reader_key, stranger_key = tmp / "root.key", tmp / "reader.key", tmp / "stranger.key"
    (keys / "root.keys").write_bytes(write_key(root_key).export_public_key())
    (keys / f"{reader}.keys").write_bytes(write_key(reader_key).export_public_key())
    write_key(stranger_key)
    write_capture(SynthSpec(packets=2000, flows=200, seed=5), tmp / "t.pcap")
    port = free_tcp_port()
    text = (REPO / "flowd" / "data" / "default.yaml").read_text()
    text += (f"  control:\n    read-group: {group}\n"
             f"  netconf:\n    listen: 127.0.0.1\n    port: {port}\n    authorized-keys: {keys}/%u.keys\n"
             f"    host-key: {tmp}/host.key\n    max-sessions: 4\n")

    def listening() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    try:
        with replayed_daemon(tmp, text, tmp / "t.pcap", ready=listening) as sock:
            yield Netconf(port, sock, root_key, reader, reader_key, stranger_key)
    finally:
        subprocess.run(["userdel", reader], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


def cli(sock: str, command: str) -> str:
    done = subprocess.run([sys.executable, "-m", "shell", "--socket", sock, "-c", command], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def leaves(element: ET.Element) -> dict[str, str]:
    """Leaf values by tag, without the 10-second rates (they move with the clock between two calls)."""
    return {tag: (child.text or "") for child in element.iter()
            if len(child) == 0 and "second-rate" not in (tag := child.tag.rsplit("}", 1)[-1])}


def test_pyez_rpcs_equal_the_shell(netconf: Netconf) -> None:
    from jnpr.junos import Device  # type: ignore[import-untyped]

    with Device(host="127.0.0.1", port=netconf.port, user="root", ssh_private_key_file=str(netconf.root_key),
                gather_facts=False) as dev:
        reply = dev.rpc.get_service_accounting_flow_information()
        xml = cli(netconf.socket, "show services accounting flow | display xml")
        shell_root = ET.fromstring(xml)[0]
        assert leaves(reply) == leaves(shell_root)
        assert int(leaves(reply)["flow-packets"]) > 0
        errors = dev.rpc.get_service_accounting_errors_information()
        assert leaves(errors) == leaves(ET.fromstring(cli(netconf.socket, "show services accounting errors "
                                                                            "| display xml"))[0])
        detail = dev.rpc.get_service_accounting_flow_detail(limit="3", order="packets")
        assert len(detail.findall(".//detail-entry")) == 3
        text = dev.cli("show services accounting errors", format="text", warning=False)
        assert text.strip() == cli(netconf.socket, "show services accounting errors").strip()


def ncclient_session(netconf: Netconf, key: Path, user: str, base10_only: bool) -> object:
    from ncclient import manager  # type: ignore[import-untyped]
    from ncclient.devices.default import DefaultDeviceHandler  # type: ignore[import-untyped]

    class Base10(DefaultDeviceHandler):  # type: ignore[misc]
        def get_capabilities(self) -> list[str]:
            return ["urn:ietf:params:netconf:base:1.0"]

    params = {"handler": Base10} if base10_only else {"name": "default"}
    return manager.connect(host="127.0.0.1", port=netconf.port, username=user, key_filename=str(key),
                           hostkey_verify=False, allow_agent=False, look_for_keys=False, device_params=params,
                           timeout=30)


@pytest.mark.parametrize("base10_only", [True, False], ids=["end-of-message", "chunked"])
def test_ncclient_raw_rpcs_in_both_framings(netconf: Netconf, base10_only: bool) -> None:
    from ncclient.xml_ import to_ele  # type: ignore[import-untyped]

    with ncclient_session(netconf, netconf.root_key, "root", base10_only) as m:  # type: ignore[attr-defined]
        assert ("urn:ietf:params:netconf:base:1.1" in m.server_capabilities)
        reply = m.dispatch(to_ele("<get-service-accounting-memory-information/>"))
        assert reply.ok
        assert b"<allocation-count>" in reply.xml.encode() or "<allocation-count>" in reply.xml
        uptime = m.dispatch(to_ele("<get-system-uptime-information/>"))
        assert "system-uptime-information" in uptime.xml
        config = m.dispatch(to_ele('<get-configuration format="set"/>'))
        assert "set forwarding-options sampling input rate 1" in config.xml
        # Junos configuration XML: a list entry is an element with a <name> (never an address as a tag).
        xml = ET.fromstring(m.dispatch(to_ele("<get-configuration/>")).xml)
        assert [e.text for e in xml.iterfind(".//{*}flow-server/{*}name")], config.xml
        # A CLI line: one hierarchy of the running configuration, and its difference from a stored one.
        sampling = ET.fromstring(m.dispatch(to_ele("<command>show configuration forwarding-options sampling"
                                                   "</command>")).xml)
        assert sampling.findtext(".//{*}sampling/{*}input/{*}rate") == "1"
        same = m.dispatch(to_ele('<command format="text">show configuration | compare rollback 0</command>'))
        assert "<output></output>" in same.xml or "<output/>" in same.xml
        bad = rpc_error(m, "<get-no-such-information/>")
        assert bad is not None and "get-no-such-information" in str(bad)


def test_a_wrong_key_is_refused(netconf: Netconf) -> None:
    async def attempt() -> None:
        async with asyncssh.connect("127.0.0.1", netconf.port, username="root", known_hosts=None,
                                    client_keys=[str(netconf.stranger_key)], agent_path=None):
            pass

    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(attempt())


def rpc_error(manager: object, rpc: str) -> Exception | None:
    """The error an RPC's <rpc-error> reply raises in ncclient, or None when the RPC succeeded."""
    from ncclient.xml_ import to_ele

    try:
        manager.dispatch(to_ele(rpc))  # type: ignore[attr-defined]
    except Exception as exc:  # ncclient raises RPCError for an rpc-error reply
        return exc
    return None


def test_read_class_user_cannot_clear(netconf: Netconf) -> None:
    from ncclient.xml_ import to_ele

    with ncclient_session(netconf, netconf.reader_key, netconf.reader, False) as m:  # type: ignore[attr-defined]
        assert m.dispatch(to_ele("<get-service-accounting-flow-information/>")).ok
        refused = rpc_error(m, "<clear-service-accounting-statistics/>")
        assert refused is not None and "permission denied" in str(refused)
    with ncclient_session(netconf, netconf.root_key, "root", False) as m:  # type: ignore[attr-defined]
        assert m.dispatch(to_ele("<clear-service-accounting-statistics/>")).ok


def test_command_rpc_formats_and_close_session(netconf: Netconf) -> None:
    async def run() -> list[str]:
        async with asyncssh.connect("127.0.0.1", netconf.port, username="root", known_hosts=None,
                                    client_keys=[str(netconf.root_key)], agent_path=None) as conn:
            writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
            replies = []
            buf = b""

            async def message() -> str:
                nonlocal buf
                while b"]]>]]>" not in buf:
                    chunk = await asyncio.wait_for(reader.read(65536), 30)
                    assert chunk, "session closed"
                    buf += chunk
                text, _, buf = buf.partition(b"]]>]]>")
                return text.decode()

            await message()  # the server's hello
            writer.write(b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>'
                         b"urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>]]>]]>")
            for i, body in enumerate([b'<command format="json">show services accounting flow</command>',
                                      b'<command format="text">show services accounting flow</command>',
                                      b"<command>show services bogus</command>", b"<close-session/>"]):
                writer.write(b'<rpc message-id="%d" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">' % i
                             + body + b"</rpc>]]>]]>")
                replies.append(await message())
            return replies

    json_reply, text_reply, bad, closed = asyncio.run(run())
    body = ET.fromstring(json_reply).text or ""
    assert json.loads(body)["services-accounting-information"]
    output = ET.fromstring(text_reply).find("{*}output")
    assert output is not None and "Flow packets:" in (output.text or "")
    assert "<rpc-error>" in bad and "bogus" in bad
    assert 'message-id="3"' in closed and "<ok/>" in closed


async def _open(netconf: Netconf) -> tuple[asyncssh.SSHClientConnection, asyncssh.SSHWriter[bytes],
                                            asyncssh.SSHReader[bytes]]:
    conn = await asyncssh.connect("127.0.0.1", netconf.port, username="root", known_hosts=None,
                                  client_keys=[str(netconf.root_key)], agent_path=None)
    writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
    return conn, writer, reader


def test_sessions_beyond_the_limit_are_refused(netconf: Netconf) -> None:
    async def run() -> None:
        open_ = [await _open(netconf) for _ in range(4)]  # the fixture's max-sessions
        try:
            with pytest.raises(asyncssh.DisconnectError, match="at most 4 NETCONF sessions"):
                await _open(netconf)
        finally:
            for conn, _, _ in open_:
                conn.close()
                await conn.wait_closed()
        await asyncio.sleep(0)
        for _ in range(100):  # the server notices the closed sessions
            try:
                conn, _, _ = await _open(netconf)
            except asyncssh.DisconnectError:
                await asyncio.sleep(0.05)
                continue
            conn.close()
            return
        raise AssertionError("sessions were not released")

    asyncio.run(run())


def test_an_oversized_message_ends_the_session(netconf: Netconf) -> None:
    async def run() -> bytes:
        conn, writer, reader = await _open(netconf)
        async with conn:
            writer.write(b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>'
                         b"urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>]]>]]>")
            writer.write(b"<rpc>" + b"x" * (2 << 20))  # over the default 1 MiB, no end of message
            received = b""
            while chunk := await asyncio.wait_for(reader.read(65536), 30):
                received += chunk
            return received

    received = asyncio.run(run())
    assert received.startswith(b"<hello") and received.count(b"]]>]]>") == 1  # the hello, then the end


def test_configuration_over_netconf_lock_load_commit_unlock(netconf: Netconf) -> None:
    """Junos's edit cycle: <lock>, <load-configuration action="set">, <commit-configuration>, <unlock>."""
    from ncclient.xml_ import to_ele

    with ncclient_session(netconf, netconf.reader_key, netconf.reader, False) as m:  # type: ignore[attr-defined]
        refused = rpc_error(m, "<lock><target><candidate/></target></lock>")
        assert refused is not None and "permission denied" in str(refused)
    with ncclient_session(netconf, netconf.root_key, "root", False) as m:  # type: ignore[attr-defined]
        assert m.dispatch(to_ele("<lock><target><candidate/></target></lock>")).ok
        bad = None
        try:
            m.dispatch(to_ele('<load-configuration action="set" format="text"><configuration-set>'
                              "set forwarding-options sampling input rate 0</configuration-set>"
                              "</load-configuration>"))
            m.dispatch(to_ele("<commit-configuration/>"))
        except Exception as exc:  # rate 0 is out of range: refused at load or at commit
            bad = exc
        assert bad is not None
        assert m.dispatch(to_ele("<unlock><target><candidate/></target></unlock>")).ok
        assert m.dispatch(to_ele("<lock><target><candidate/></target></lock>")).ok
        load = m.dispatch(to_ele('<load-configuration action="set" format="text"><configuration-set>'
                                 "set forwarding-options sampling input rate 7</configuration-set>"
                                 "</load-configuration>"))
        assert "load-configuration-results" in load.xml
        commit = m.dispatch(to_ele("<commit-configuration><log>from netconf</log></commit-configuration>"))
        assert "commit-success" in commit.xml
        assert m.dispatch(to_ele("<unlock><target><candidate/></target></unlock>")).ok
    assert "set forwarding-options sampling input rate 7" in cli(netconf.socket, "show configuration | display set")
    history = cli(netconf.socket, "show system commit")
    assert "from netconf" in history
