"""One NETCONF session (RFC 6241): the hello exchange, then each `<rpc>` answered as Junos answers it.

Operational RPCs go by their Junos names (`<get-service-accounting-flow-information/>`, the grammar's
``xml_rpc``), their parameters as child elements named after the CLI options (`<limit>10</limit>`,
`<detail/>`); the reply holds the same element tree `| display xml` prints. `<command format="text|
xml|json">show ...</command>` runs a CLI line; `<get-configuration format="xml|text|set"/>` returns the
running configuration; `<close-session/>` and `<kill-session>` end sessions. Every daemon call is made
on behalf of the session's user, so the daemon applies the control socket's classes to it. Errors are
`<rpc-error>` elements with RFC 6241 tags and Junos's messages. Pure but for the ``call`` coroutine it
is given: no sockets here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from xml.sax.saxutils import escape, quoteattr

from shell.client import ClientError, RemoteError
from shell.commands import Command, Level, Match, Opt
from shell.grammar import COMMANDS, PARSER
from shell.render import RENDERERS
from shell.render.common import Element
from shell.render.configuration import (
    configuration_tree,
    render_configuration,
    render_configuration_json,
    render_configuration_set,
)
from shell.render.structured import JUNOS_XMLNS, element_lines

BASE_NS: Final = "urn:ietf:params:xml:ns:netconf:base:1.0"
BASE_1_0: Final = "urn:ietf:params:netconf:base:1.0"
BASE_1_1: Final = "urn:ietf:params:netconf:base:1.1"
CAPABILITIES: Final = (BASE_1_0, BASE_1_1, "http://xml.juniper.net/netconf/junos/1.0",
                       "http://xml.juniper.net/dmi/system/1.0")
XML_RPCS: Final[Mapping[str, Command]] = {c.xml_rpc: c for c in COMMANDS if c.xml_rpc}

Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


class RpcError(Exception):
    """An `<rpc-error>` to send: RFC 6241 error-type and error-tag, Junos's message, the bad element."""

    def __init__(self, tag: str, message: str, *, kind: str = "application", bad: str | None = None) -> None:
        super().__init__(message)
        self.tag, self.message, self.kind, self.bad = tag, message, kind, bad

    def xml(self) -> str:
        info = f"<error-info><bad-element>{escape(self.bad)}</bad-element></error-info>" if self.bad else ""
        return (f"<rpc-error><error-type>{self.kind}</error-type><error-tag>{self.tag}</error-tag>"
                f"<error-severity>error</error-severity><error-message>{escape(self.message)}</error-message>"
                f"{info}</rpc-error>")


class SessionEnd(Exception):
    """The session is over once the reply is sent (`<close-session/>`)."""


@dataclass
class Reply:
    """What to send for one message, and whether the session ends after it."""

    text: str
    close: bool = False


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def hello(session_id: int) -> str:
    caps = "".join(f"<capability>{c}</capability>" for c in CAPABILITIES)
    return (f'<hello xmlns="{BASE_NS}"><capabilities>{caps}</capabilities>'
            f"<session-id>{session_id}</session-id></hello>")


def parse(message: bytes) -> ET.Element:
    """One message as XML; document type declarations (and so entity tricks) are refused."""
    if b"<!DOCTYPE" in message or b"<!ENTITY" in message:
        raise RpcError("malformed-message", "document type declarations are not accepted", kind="rpc")
    try:
        return ET.fromstring(message)
    except ET.ParseError as exc:
        raise RpcError("malformed-message", f"not well-formed XML: {exc}", kind="rpc") from None


def client_capabilities(message: bytes) -> set[str]:
    """The capabilities of a client's `<hello>`; RpcError when it is not one."""
    root = parse(message)
    if local(root.tag) != "hello":
        raise RpcError("malformed-message", "expected <hello>", kind="rpc")
    return {(c.text or "").strip() for c in root.iter() if local(c.tag) == "capability"}


def _wrap(attrs: Mapping[str, str], body: str) -> str:
    extra = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items() if not k.startswith("{"))
    return f'<rpc-reply xmlns="{BASE_NS}" xmlns:junos="{JUNOS_XMLNS}"{extra}>{body}</rpc-reply>'


def element_xml(root: Element) -> str:
    return "\n".join(element_lines(root, 0))


class Session:
    """Answers one client's messages; ``call(method, params)`` reaches the daemon as the session's user."""

    def __init__(self, session_id: int, user: str, call: Call,
                 kill: Callable[[int], bool] | None = None) -> None:
        """``kill(session_id)`` ends another session of the same user (False when there is none)."""
        self.session_id = session_id
        self.user = user
        self.call = call
        self.kill = kill
        self.configuring = False  # this session has a candidate (after <lock/> or <load-configuration>)

    async def answer(self, message: bytes) -> Reply:
        """The reply to one framed message (an `<rpc>`)."""
        try:
            root = parse(message)
        except RpcError as exc:
            return Reply(_wrap({}, exc.xml()))
        if local(root.tag) != "rpc":
            return Reply(_wrap({}, RpcError("unknown-element", f"syntax error, expecting <rpc>: {local(root.tag)}",
                                            kind="rpc", bad=local(root.tag)).xml()))
        attrs = dict(root.attrib)
        operations = list(root)
        if len(operations) != 1:
            return Reply(_wrap(attrs, RpcError("operation-failed", "expected one operation in <rpc>",
                                               kind="rpc").xml()))
        try:
            return Reply(_wrap(attrs, await self.operation(operations[0])))
        except SessionEnd:
            return Reply(_wrap(attrs, "<ok/>"), close=True)
        except RpcError as exc:
            return Reply(_wrap(attrs, exc.xml()))

    async def operation(self, op: ET.Element) -> str:
        name = local(op.tag)
        if name == "close-session":
            raise SessionEnd
        if name == "kill-session":
            return await self._kill(op)
        if name == "command":
            return await self._command(op)
        if name == "get-configuration":
            return await self._configuration(op.get("format", "xml"))
        if name in CONFIG_OPERATIONS:
            return await CONFIG_OPERATIONS[name](self, op)
        command = XML_RPCS.get(name)
        if command is None or command.rpc is None:
            raise RpcError("operation-not-supported", f"syntax error, expecting <rpc> operation: {name}",
                           kind="protocol", bad=name)
        match = _match(command, op)
        result = await self._daemon(command.rpc, match.params)
        return self._xml(command.rpc, result)

    async def _daemon(self, method: str, params: dict[str, Any]) -> Any:
        try:
            return await self.call(method, params)
        except RemoteError as exc:
            if exc.code == "permission-denied":
                raise RpcError("access-denied", str(exc), kind="protocol") from None
            if exc.code == "bad-params":
                raise RpcError("invalid-value", exc.message) from None
            raise RpcError("operation-failed", str(exc)) from None
        except ClientError as exc:
            raise RpcError("operation-failed", str(exc)) from None

    def _xml(self, method: str, result: Any) -> str:
        renderer = RENDERERS[method]
        if renderer.tree is None:  # clear commands: nothing to show
            return "<ok/>"
        return element_xml(renderer.tree(result))

    async def _command(self, op: ET.Element) -> str:
        line = (op.text or "").strip()
        fmt = op.get("format", "xml")
        if fmt not in ("text", "xml", "json"):
            raise RpcError("invalid-value", f"format: expected text, xml or json, got {fmt}", bad="format")
        resolved = PARSER.resolve(line)
        if not isinstance(resolved, Match) or resolved.command.rpc is None:
            message = getattr(resolved, "message", "syntax error") if resolved is not None else "syntax error"
            word = getattr(resolved, "word", line)
            raise RpcError("invalid-value", f"{message.rstrip('.')}: {word}" if word else message, bad=word or None)
        method, params = resolved.call
        result = await self._daemon(method, params)
        if "error" in result:  # a statement the configuration's tree does not hold
            raise RpcError("invalid-value", str(result["error"]["message"]))
        if method == "system.configuration":
            return await self._configuration(fmt if fmt != "json" else "json", result)
        renderer = RENDERERS[method]
        if fmt == "text" or renderer.tree is None:
            text = "\n".join(renderer.text(result, resolved.level))
            return f"<output>{escape(text)}</output>" if text else "<output></output>"
        if fmt == "json":
            return escape("\n".join(renderer.displays["json"](result)))
        return self._xml(method, result)

    async def _configuration(self, fmt: str, result: Any = None) -> str:
        if result is None:
            result = await self._daemon("system.configuration", {})
        if fmt == "text":
            return f"<configuration-text>{escape(chr(10).join(render_configuration(result, None)))}</configuration-text>"
        if fmt == "set":
            return f"<configuration-set>{escape(chr(10).join(render_configuration_set(result)))}</configuration-set>"
        if fmt == "json":
            return escape("\n".join(render_configuration_json(result)))
        if fmt != "xml":
            raise RpcError("invalid-value", f"format: expected xml, text or set, got {fmt}", bad="format")
        return element_xml(configuration_tree(result))

    async def _kill(self, op: ET.Element) -> str:
        target = next((c.text for c in op if local(c.tag) == "session-id"), None)
        if target is None or not target.strip().isdigit():
            raise RpcError("missing-element", "kill-session needs <session-id>", kind="protocol", bad="session-id")
        number = int(target)
        if number == self.session_id:
            raise RpcError("invalid-value", "a session cannot kill itself; use <close-session/>", bad="session-id")
        if self.kill is None or not self.kill(number):
            raise RpcError("invalid-value", f"no session {number} of user {self.user}", bad="session-id")
        return "<ok/>"


async def _lock(session: Session, op: ET.Element) -> str:
    """`<lock><target><candidate/></target></lock>`: configure exclusive (others are told about the lock)."""
    await session._daemon("config.enter", {"mode": "exclusive"})
    session.configuring = True
    return "<ok/>"


async def _unlock(session: Session, op: ET.Element) -> str:
    """`<unlock>`: leave configuration mode; uncommitted changes are discarded."""
    await session._daemon("config.exit", {})
    session.configuring = False
    return "<ok/>"


LOAD_MODES: Final = {"merge": "merge", "override": "override", "replace": "replace", "set": "merge"}


async def _load(session: Session, op: ET.Element) -> str:
    """`<load-configuration action="merge|override|replace|set" format="text|set">` into the candidate."""
    action = op.get("action", "merge")
    if action not in LOAD_MODES:
        raise RpcError("invalid-value", f"action: expected merge, override, replace or set, got {action}",
                       bad="action")
    body = next((c for c in op if local(c.tag) in ("configuration-text", "configuration-set")), None)
    if body is None or not (body.text or "").strip():
        raise RpcError("missing-element", "load-configuration needs <configuration-text> or <configuration-set>",
                       bad="configuration-text")
    if not session.configuring:
        await session._daemon("config.enter", {"mode": "private"})
        session.configuring = True
    await session._daemon("config.load", {"mode": LOAD_MODES[action], "text": body.text})
    return "<load-configuration-results><ok/></load-configuration-results>"


async def _commit(session: Session, op: ET.Element) -> str:
    """`<commit-configuration>` with `<check/>`, `<log>COMMENT</log>`, `<confirmed/><confirm-timeout>N`."""
    children = {local(c.tag): (c.text or "").strip() for c in op}
    params: dict[str, Any] = {}
    if "check" in children:
        params["check"] = True
    if children.get("log"):
        params["comment"] = children["log"]
    if "confirmed" in children:
        timeout = children.get("confirm-timeout") or "10"
        if not timeout.isdigit():
            raise RpcError("invalid-value", f"confirm-timeout: expected minutes, got {timeout}", bad="confirm-timeout")
        params["confirmed"] = int(timeout)
    if not session.configuring:
        await session._daemon("config.enter", {"mode": "private"})
        session.configuring = True
    await session._daemon("config.commit", params)
    done = "<commit-check-success/>" if params.get("check") else "<commit-success/>"
    return f"<commit-results><routing-engine><name>re0</name>{done}</routing-engine></commit-results>"


CONFIG_OPERATIONS: Final[Mapping[str, Callable[[Session, ET.Element], Awaitable[str]]]] = {
    "lock": _lock, "unlock": _unlock, "load-configuration": _load, "commit-configuration": _commit,
}


def _match(command: Command, op: ET.Element) -> Match:
    """The CLI match an RPC element stands for: child elements are options (or the output level)."""
    params: dict[str, Any] = {}
    level: str | None = None
    options = {o.keyword: o for o in command.options if isinstance(o, Opt)}
    levels = next((o for o in command.options if isinstance(o, Level)), None)
    for child in op:
        tag = local(child.tag)
        if levels is not None and tag in {w for w, _ in levels.words}:
            level = tag
            continue
        option = options.get(tag)
        if option is None:
            raise RpcError("unknown-element", f"syntax error: {tag}", bad=tag)
        try:
            params[option.param_name] = option.value.match((child.text or "").strip())
        except ValueError as exc:
            raise RpcError("invalid-value", f"{tag}: {exc}", bad=tag) from None
    missing = [o.keyword for o in options.values() if o.required and o.param_name not in params]
    if missing:
        raise RpcError("missing-element", f"syntax error, expecting <{missing[0]}>", bad=missing[0])
    return Match(command, params, level or (levels.default if levels else None))
