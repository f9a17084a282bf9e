"""`flowcli`: argv → client → the interactive shell, or one-shot commands (`-c`, or lines on standard input)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from flowd.control.protocol import default_socket_path
from shell.client import DEFAULT_TIMEOUT, Client
from shell.parser import split_commands
from shell.repl import run_batch, run_interactive


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowcli",
        description="Junos-style operational shell for flowd. Without -c and with a terminal on standard input it "
                    "is interactive; otherwise it runs the commands given with -c, or read from standard input, "
                    "printing only their output (errors go to standard error; exit status 1 after any error).",
    )
    parser.add_argument("-c", "--command", action="append", default=[], metavar="COMMAND",
                        help="run COMMAND and exit; repeatable, and COMMAND may hold several commands separated "
                             "by ';'")
    parser.add_argument("--socket", type=Path, default=None, metavar="PATH",
                        help="control socket of flowd (default: $FLOWD_SOCKET, /run/flowd/flowd.sock when "
                             "/run/flowd exists, else $XDG_RUNTIME_DIR/flowd.sock)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"how long to wait for each reply (default {DEFAULT_TIMEOUT:g})")
    return parser


async def _run(args: argparse.Namespace) -> int:
    client = Client(args.socket or default_socket_path(), timeout=args.timeout)
    try:
        if args.command:
            commands = [cmd for arg in args.command for cmd in split_commands(arg)]
            return await run_batch(commands, client, sys.stdout, sys.stderr)
        if not sys.stdin.isatty():
            commands = [cmd for line in sys.stdin for cmd in split_commands(line)]
            return await run_batch(commands, client, sys.stdout, sys.stderr)
        return await run_interactive(client)
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `flowcli`."""
    args = _parser().parse_args(argv)
    if args.timeout <= 0:
        _parser().error("--timeout must be positive")
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into a command that stopped reading (`flowcli -c ... | head`).
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
