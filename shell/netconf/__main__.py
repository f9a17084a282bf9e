"""`python -m shell.netconf`: the NETCONF server the daemon starts for `flowd netconf { ... }` (not run by hand)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from shell.netconf.server import Settings, serve


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shell.netconf", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="the daemon's control socket")
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=830)
    parser.add_argument("--authorized-keys", default="/etc/flowd/netconf/%u.keys")
    parser.add_argument("--host-key", required=True)
    parser.add_argument("--max-sessions", type=int, default=8)
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    parser.add_argument("--max-message", type=int, default=1 << 20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="flowd-netconf: %(message)s", stream=sys.stderr)
    settings = Settings(args.socket, args.listen, args.port, args.authorized_keys, args.host_key,
                        args.max_sessions, args.idle_timeout, args.max_message)

    async def run() -> None:
        task = asyncio.ensure_future(serve(settings))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"flowd-netconf: cannot listen on {args.listen} port {args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 71  # EX_OSERR
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
