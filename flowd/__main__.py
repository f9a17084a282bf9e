"""The `flowd` command: argv → Config → batch mode, config check, or the daemon."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import NoReturn, cast

from flowd import __version__
from flowd.config.loader import load_config
from flowd.config.overrides import with_overrides
from flowd.config.schema import Config, ConfigError
from flowd.runtime.exit_status import ExitStatus, epilog

EXAMPLES = """\
examples:
  sudo flowd --install-service --admin alice
  flowd --check-config --config /etc/flowd/flowd.yaml
  flowd --read trace.pcap --flow-server 127.0.0.1:2055
  flowd --read - --flow-server 127.0.0.1:2055 < trace.pcap.gz
"""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with usage errors exiting EX_USAGE (64) instead of 2, and the exit statuses and examples after
    the help (written when the help is: a run that prints none does without the text wrapping)."""

    def format_help(self) -> str:
        self.epilog = f"{epilog()}\n\n{EXAMPLES}"
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message}\n")


def host_port(text: str) -> tuple[str, int]:
    """Parse HOST:PORT or [V6]:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


MAX_SPEED = 0.0  # `--replay-speed max`: flowd.capture.replay.MAX_SPEED, not imported to keep batch mode light


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def replay_speed(text: str) -> float:
    if text == "max":
        return MAX_SPEED
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if not speed > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'max', got {text!r}")
    return speed


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="flowd", description="Junos-style active flow monitoring: capture, flow cache, "
        "cflowd/NetFlow export.", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"flowd {__version__}")
    p.add_argument("--config", metavar="FILE",
                   help="YAML or Junos curly-brace configuration (default: the embedded example)")
    p.add_argument("--check-config", action="store_true",
                   help="validate the configuration, print the result and exit 0 (valid) or 78")
    p.add_argument("--demo", action="store_true",
                   help="start a daemon replaying a sample capture and open the flowcli shell on it")
    p.add_argument("--read", metavar="FILE",
                   help="batch mode: process a pcap/pcapng(.gz) file ('-' = stdin) as fast as possible, "
                   "export every flow, print a summary and exit")
    p.add_argument("--workers", metavar="N", type=positive, default=None,
                   help="with --read: processes sharing the flow cache, split by flow key (default: one per "
                   "CPU, one for a file under 16 MiB; 1 when reading stdin or when sampling is not 1-in-1); the export is the same flows "
                   "with the same sequence numbers as with 1")
    d = p.add_argument_group("daemon (the default when --read is not given)")
    d.add_argument("--socket", metavar="PATH",
                   help="control socket (default: $FLOWD_SOCKET, /run/flowd/flowd.sock under systemd, "
                   "else $XDG_RUNTIME_DIR/flowd.sock)")
    d.add_argument("--replay", metavar="FILE", action="append",
                   help="feed the daemon from a capture file (repeatable)")
    d.add_argument("--replay-speed", metavar="N|max", type=replay_speed, default=1.0,
                   help="replay N times faster than recorded, or 'max' (default 1: packet timing)")
    d.add_argument("--replay-loop", action="store_true", help="start the replay over at the end of the file")
    d.add_argument("--interface", metavar="NAME", action="append",
                   help="capture this Linux interface live, sampling every packet, instead of the configured "
                   "inputs (repeatable; needs CAP_NET_RAW). Without --interface or --replay, --config FILE's "
                   "input interfaces are captured")
    d.add_argument("--rollback-dir", metavar="DIR", default=os.environ.get("STATE_DIRECTORY") and
                   os.path.join(os.environ["STATE_DIRECTORY"].split(":")[0], "rollback"),
                   help="where commits keep the last 50 configurations (default: $STATE_DIRECTORY/rollback "
                        "under systemd, else .NAME.rollback beside the configuration file)")
    d.add_argument("--confirm-unit", metavar="SECONDS", type=float, default=60.0,
                   help="seconds in one minute of `commit confirmed N` (default 60; tests shorten it)")
    d.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    i = p.add_argument_group("running as a systemd service (docs/operator-guide.md)")
    i.add_argument("--install-service", action="store_true",
                   help="create the flowd user and the flowd and flowd-admin groups, install "
                   "/etc/flowd/flowd.yaml (kept when present) and /etc/systemd/system/flowd.service, and exit")
    i.add_argument("--root", metavar="DIR",
                   help="with --install-service: stage the files under DIR and leave the host's accounts alone")
    i.add_argument("--flowd-path", metavar="PATH",
                   help="with --install-service: the flowd command the unit runs (default: this installation's)")
    i.add_argument("--reader", metavar="USER", action="append",
                   help="with --install-service: add USER to group flowd (show commands; repeatable)")
    i.add_argument("--admin", metavar="USER", action="append",
                   help="with --install-service: add USER to groups flowd and flowd-admin (show and clear)")
    o = p.add_argument_group("overrides (replace the configuration's values)")
    o.add_argument("--flow-server", metavar="HOST:PORT", type=host_port, action="append",
                   help="export to this flow server instead of the configured ones (repeatable, up to 8)")
    o.add_argument("--export-version", choices=("5", "9", "ipfix"),
                   help="export format: 5 (cflowd v5), 9 (NetFlow v9) or ipfix. With 9 or ipfix, a configuration "
                   "without an inet6 output exports IPv6 too, to the same flow servers with the same timeouts; "
                   "with 5, IPv6 packets are counted (not IPv4) but not exported")
    o.add_argument("--transport", choices=("udp", "tcp"),
                   help="export transport: udp, or tcp (IPFIX only; RFC 7011 section 10.4)")
    o.add_argument("--source-address", metavar="ADDR", action="append",
                   help="source address of export datagrams to the flow servers of its address family (replaces "
                   "the configured ones; give it once per family). A flow server with none of its family "
                   "uses one the kernel picks")
    o.add_argument("--active-timeout", metavar="S", type=float, help="flow-active-timeout in seconds")
    o.add_argument("--inactive-timeout", metavar="S", type=float, help="flow-inactive-timeout in seconds")
    o.add_argument("--sampling-rate", metavar="N", type=int, help="sample 1 packet in N")
    return p


def configure(args: argparse.Namespace) -> Config:
    return overrides(args, load_config(args.config))


def overrides(args: argparse.Namespace, cfg: Config) -> Config:
    """The command line's overrides applied to a loaded configuration (start, reload and commit alike)."""
    return with_overrides(cfg,
        flow_servers=args.flow_server, export_version=args.export_version,
        active_timeout=args.active_timeout, inactive_timeout=args.inactive_timeout,
        sampling_rate=args.sampling_rate, source_address=args.source_address, transport=args.transport,
        interfaces=args.interface)


def main(argv: list[str] | None = None) -> int:
    # Start-up allocates much and frees little (modules, classes, the configuration): a collection during it
    # walks what lives on for nothing, some 6 ms of a one-packet --read. Collection resumes when the chosen
    # mode starts (`started`), or when main returns.
    gc.disable()
    try:
        return _main(argv)
    finally:
        gc.enable()


def started() -> None:
    """Start-up is over: what it loaded lives to the end (collections skip it, forked processes share its
    pages), and garbage collection resumes."""
    gc.freeze()
    gc.enable()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    install_only = [f"--{n}" for n in ("root", "flowd-path", "reader", "admin") if getattr(args, n.replace("-", "_"))]
    if install_only and not args.install_service:
        parser.error(f"{install_only[0]} needs --install-service")
    if args.install_service:
        from flowd.runtime.install import install_main

        return ExitStatus.OSERR if install_main(args) else ExitStatus.OK
    if args.check_config:
        from flowd.config.diagnosis import check_config_main

        return ExitStatus.CONFIG if check_config_main(args.config) else ExitStatus.OK
    try:
        cfg = configure(args)
    except ConfigError as exc:
        print(f"flowd: {exc}", file=sys.stderr)
        return ExitStatus.CONFIG
    if args.demo:
        from flowd.demo import run_demo

        started()
        return run_demo(args.config)
    if args.read and args.interface:
        parser.error("--interface runs the daemon; it cannot be combined with --read")
    if args.read:
        from flowd.runtime.batch_mode import run_batch

        started()
        return run_batch(args.read, cfg, workers=args.workers)
    return run_daemon(args, cfg)


def run_daemon(args: argparse.Namespace, cfg: Config) -> int:
    """Run in the foreground until SIGTERM/SIGINT/SIGQUIT; SIGHUP reloads the configuration."""
    from flowd.runtime.signals import Signals

    signals = Signals()
    signals.remember()  # from here on no signal ends the process uncleanly (flowd/runtime/signals.py)

    import asyncio
    import logging

    import uvloop

    from flowd.app import App
    from flowd.capture.live import LiveCaptureError
    from flowd.capture.replay import Replay
    from flowd.control.protocol import default_socket_path
    from flowd.export.udp import ExportSocketError
    from flowd.routing.prefixfile import PrefixFileError
    from flowd.runtime.clock import SystemClock
    from flowd.runtime.inputs import live_inputs
    from flowd.runtime.log import setup_logging
    from flowd.runtime.worker_pool import WorkerError

    started()
    setup_logging(args.log_level)
    log = logging.getLogger("flowd")
    socket_path = args.socket or cfg.control.socket or str(default_socket_path())

    async def daemon() -> None:
        clock = SystemClock()
        replays = [Replay(path, clock, speed=args.replay_speed, loop=args.replay_loop)
                   for path in args.replay or ()]
        # Live inputs: --interface, else a configuration file's bindings unless a replay stands for them.
        live = live_inputs(cfg) if args.interface or (args.config and not args.replay) else []
        app = App(cfg, socket_path=socket_path, clock=clock, replays=replays,
                  load_config=lambda: configure(args), live=live, log_level=args.log_level)
        if args.config:
            from flowd.config.loader import parse_config
            from flowd.control.database import open_database
            from flowd.syntax.edit import Tree

            active = cast(Tree, load_config(args.config).tree)  # a parsed tree is a plain dict
            app.database = open_database(
                args.config, lambda text: overrides(args, parse_config(text, source="candidate", syntax="junos")),
                app.reload, active=active, rollback_dir=args.rollback_dir,
                confirm_unit=args.confirm_unit)
        signals.attach(asyncio.get_running_loop(), stop=app.stop, reload=app.reload)
        try:
            await app.run()
        finally:
            signals.block()

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(daemon())
        return ExitStatus.OK
    except PrefixFileError as exc:  # a route file that does not load (FILE:LINE: message)
        log.error("%s", exc)
        return ExitStatus.CONFIG
    except ExportSocketError as exc:
        log.error("%s", exc)
        return ExitStatus.UNAVAILABLE
    except PermissionError as exc:
        log.error("%s", exc)
        return ExitStatus.NOPERM
    except (OSError, LiveCaptureError) as exc:
        log.error("%s", exc)
        return ExitStatus.OSERR
    except WorkerError as exc:
        log.error("%s", exc)
        return ExitStatus.SOFTWARE
    except Exception:
        log.exception("the daemon failed")
        return ExitStatus.SOFTWARE
    finally:
        signals.settle()


if __name__ == "__main__":
    sys.exit(main())
