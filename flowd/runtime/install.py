"""`flowd --install-service`: the system accounts, /etc/flowd/flowd.yaml and the systemd unit, idempotently.

Run as root it creates the system group and user ``flowd`` and the group ``flowd-admin``
(groupadd/useradd --system, only when missing), installs the packaged default configuration with
its ``flowd control`` block switched on (never over an existing file), gives /etc/flowd and the
configuration to ``flowd`` (configuration mode's commit writes them), and writes
/etc/systemd/system/flowd.service with the absolute path of the installed ``flowd`` command.
``--root DIR`` stages the same files under DIR and leaves the host's accounts alone (tests,
packagers). The unit is declared here, once: systemd/flowd.service in the repository is its
rendering for /usr/local/bin/flowd (``python -m flowd.runtime.install --unit``), and a test keeps the two
equal.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from flowd.config.loader import default_text, parse_config
from flowd.config.schema import ConfigError

SERVICE_USER: Final = "flowd"
READ_GROUP: Final = "flowd"  # the unit's Group=: owns /run/flowd and the control socket
ADMIN_GROUP: Final = "flowd-admin"
CONFIG_PATH: Final = Path("/etc/flowd/flowd.yaml")
UNIT_PATH: Final = Path("/etc/systemd/system/flowd.service")
CHECKED_IN_FLOWD: Final = "/usr/local/bin/flowd"  # the path systemd/flowd.service is rendered with
NOLOGIN_SHELLS: Final = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")

# Commented lines of flowd/data/default.yaml that the installed configuration switches on.
CONTROL_LINES: Final = {
    "  # control:": "  control:",
    f"  #   read-group: {READ_GROUP}": f"    read-group: {READ_GROUP}",
    f"  #   admin-group: {ADMIN_GROUP}": f"    admin-group: {ADMIN_GROUP}",
}

UNIT_TEMPLATE: Final = """\
# flowd as a systemd service. Install with `sudo flowd --install-service` (docs/operator-guide.md),
# which writes this file with the real path of `flowd`; local changes belong in a drop-in
# (`systemctl edit flowd`). docs/security.md explains every hardening line.
[Unit]
Description=flowd flow monitoring daemon (Junos-style sampling and cflowd/NetFlow export)
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
NotifyAccess=main
WatchdogSec=30
ExecStartPre=@FLOWD@ --check-config --config /etc/flowd/flowd.yaml
ExecStart=@FLOWD@ --config /etc/flowd/flowd.yaml
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
# Stopping exports the whole flow cache, paced at flow-export-rate: at most 20 s (the rate rises if
# needed), then up to 5 s for TCP collectors to take their backlog, plus the capture workers' stop.
TimeoutStopSec=40s

# Identity: the control socket is /run/flowd/flowd.sock, mode 0660 in a 0750 directory, both group
# flowd, so members of flowd (and flowd-admin members, who are put in both) can reach it.
User=flowd
Group=flowd
RuntimeDirectory=flowd
RuntimeDirectoryMode=0750
UMask=0077
# Configuration mode: a commit writes /etc/flowd/flowd.yaml (the installer gives /etc/flowd to flowd)
# and keeps the last 50 configurations in /var/lib/flowd/rollback.
ReadWritePaths=/etc/flowd
StateDirectory=flowd
StateDirectoryMode=0750
# Descriptors: the control server caps its connections at 64 (docs/security.md); the rest is for capture
# rings, capture workers and flow-server sockets.
LimitNOFILE=8192

# Live capture opens AF_PACKET sockets: CAP_NET_RAW and nothing else.
AmbientCapabilities=CAP_NET_RAW
CapabilityBoundingSet=CAP_NET_RAW
NoNewPrivileges=yes

# Sandbox.
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_PACKET AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""


class InstallError(Exception):
    """The installation cannot go on; ``str()`` is the one line printed after ``flowd: ``."""


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the installer looked at, and what it did about it."""

    what: str
    outcome: str


Runner = Callable[[Sequence[str]], None]


def unit_text(flowd: str) -> str:
    """The unit file, running the `flowd` command at that absolute path."""
    if not os.path.isabs(flowd) or any(c.isspace() for c in flowd):
        raise InstallError(f"the flowd path must be absolute and without spaces, got {flowd!r}")
    return UNIT_TEMPLATE.replace("@FLOWD@", flowd)


def service_config_text() -> str:
    """The packaged default configuration with its `flowd control` groups switched on."""
    lines = default_text().splitlines(keepends=True)
    done: set[str] = set()
    for i, line in enumerate(lines):
        for commented, active in CONTROL_LINES.items():
            if line.startswith(commented):
                lines[i] = active + line[len(commented):]
                done.add(commented)
    text = "".join(lines)
    try:
        control = parse_config(text, source=str(CONFIG_PATH), syntax="yaml").control
    except ConfigError as exc:
        raise InstallError(f"the packaged default configuration does not load: {exc}") from None
    if done != set(CONTROL_LINES) or (control.read_group, control.admin_group) != (READ_GROUP, ADMIN_GROUP):
        raise InstallError("the packaged default configuration has no `flowd control` block to switch on")
    return text


def find_flowd(argv0: str) -> str:
    """The absolute path of the installed `flowd` command that is running (or of this installation)."""
    if Path(argv0).name == "flowd" and os.access(argv0, os.X_OK):
        return os.path.abspath(argv0)
    beside = Path(sysconfig.get_path("scripts")) / "flowd"
    if os.access(beside, os.X_OK):
        return str(beside)
    if found := shutil.which("flowd"):
        return os.path.abspath(found)
    raise InstallError("cannot find the installed `flowd` command; install flowd with pip, or give --flowd-path")


def unreachable_by(path: str) -> str | None:
    """Why another user (the service user) could not run the command at `path`, or None."""
    script = Path(path)
    to_check = [script]
    try:
        first = script.read_bytes()[:256].split(b"\n", 1)[0]
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if first.startswith(b"#!") and (words := first[2:].split()):
        to_check.append(Path(os.fsdecode(words[0])))
    for target in to_check:
        real = target.resolve()
        if not os.stat(real).st_mode & 0o001:
            return f"{real} is not executable by other users"
        for parent in real.parents:
            if not os.stat(parent).st_mode & 0o001:
                return f"{parent} is not searchable by other users (so {target} is out of reach)"
    return None


def _run(argv: Sequence[str]) -> None:
    try:
        subprocess.run(list(argv), check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise InstallError(f"{argv[0]} is not installed (it creates the system accounts)") from None
    except subprocess.CalledProcessError as exc:
        detail = " ".join((exc.stderr or exc.stdout or "").split()) or f"exit status {exc.returncode}"
        raise InstallError(f"{' '.join(argv)} failed: {detail}") from None


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def ensure_accounts(run: Runner = _run) -> list[Step]:
    """The system groups flowd and flowd-admin and the system user flowd (primary group flowd)."""
    steps = []
    for group in (READ_GROUP, ADMIN_GROUP):
        if _group_exists(group):
            steps.append(Step(f"group {group}", "exists"))
        else:
            run(["groupadd", "--system", group])
            steps.append(Step(f"group {group}", "created"))
    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        shell = next((s for s in NOLOGIN_SHELLS if os.path.exists(s)), NOLOGIN_SHELLS[-1])
        run(["useradd", "--system", "--gid", READ_GROUP, "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", shell, "--comment", "flowd flow monitoring daemon", SERVICE_USER])
        steps.append(Step(f"user {SERVICE_USER}", f"created (system user, group {READ_GROUP}, shell {shell})"))
    else:
        group = grp.getgrgid(user.pw_gid).gr_name
        note = "" if group == READ_GROUP else f"; its primary group is {group}, the unit runs it as group {READ_GROUP}"
        steps.append(Step(f"user {SERVICE_USER}", f"exists{note}"))
    return steps


def add_members(readers: Sequence[str], admins: Sequence[str], run: Runner = _run) -> list[Step]:
    """Readers join flowd; admins join flowd and flowd-admin (the socket's group is flowd)."""
    steps = []
    for users, groups in ((readers, (READ_GROUP,)), (admins, (READ_GROUP, ADMIN_GROUP))):
        for name in users:
            try:
                pwd.getpwnam(name)
            except KeyError:
                raise InstallError(f"no such user: {name}") from None
            run(["usermod", "--append", "--groups", ",".join(groups), name])
            steps.append(Step(f"user {name}", f"added to {' and '.join(groups)}"))
    return steps


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    tmp.replace(path)


def install_files(root: Path, flowd: str) -> list[Step]:
    """The configuration (kept when present) and the unit (rewritten when it differs) under `root`."""
    text = unit_text(flowd)  # a bad path fails before anything is written
    steps = []
    config = root / CONFIG_PATH.relative_to("/")
    if config.exists():
        steps.append(Step(str(CONFIG_PATH), "kept (exists)"))
    else:
        _write(config, service_config_text(), 0o644)
        steps.append(Step(str(CONFIG_PATH), "created from the packaged default, control groups on"))
    unit = root / UNIT_PATH.relative_to("/")
    if unit.exists() and unit.read_text(encoding="utf-8") == text:
        steps.append(Step(str(UNIT_PATH), "unchanged"))
    else:
        outcome = "updated" if unit.exists() else "created"
        _write(unit, text, 0o644)
        steps.append(Step(str(UNIT_PATH), f"{outcome} (ExecStart={flowd})"))
    return steps


def own_config(root: Path, user: str = SERVICE_USER, group: str = READ_GROUP) -> list[Step]:
    """/etc/flowd and its configuration belong to the service user, so configuration mode's commit can write them."""
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    folder = root / CONFIG_PATH.parent.relative_to("/")
    for path in (folder, folder / CONFIG_PATH.name):
        os.chown(path, uid, gid)
    return [Step(str(CONFIG_PATH.parent), f"owner {user}:{group} (commit writes the configuration)")]


def next_steps(staged: bool) -> list[str]:
    lines = ["next steps:"]
    if staged:
        lines.append("  create the accounts on the target: groupadd --system flowd; groupadd --system flowd-admin;")
        lines.append("    useradd --system --gid flowd --no-create-home --home-dir /nonexistent "
                     "--shell /usr/sbin/nologin flowd")
        lines.append(f"  chown {SERVICE_USER}:{READ_GROUP} {CONFIG_PATH.parent} {CONFIG_PATH}   "
                     "# configuration mode's commit writes it")
    lines += [
        "  systemctl daemon-reload && systemctl enable --now flowd",
        "  usermod -aG flowd USER              # USER may run show commands (flowcli)",
        "  usermod -aG flowd,flowd-admin USER  # USER may also run clear commands",
        "  (new groups apply from the user's next login; then: flowcli)",
    ]
    return lines


def install(*, root: Path | None, flowd: str, readers: Sequence[str] = (), admins: Sequence[str] = (),
            run: Runner = _run) -> list[Step]:
    """Install the service on the host (`root` None) or stage its files under `root`."""
    if root is None:
        if os.geteuid() != 0:
            raise InstallError("installing the service needs root (sudo flowd --install-service), "
                               "or --root DIR to stage the files")
        steps = ensure_accounts(run)
        steps += install_files(Path("/"), flowd)
        steps += own_config(Path("/"))
        return steps + add_members(readers, admins, run)
    if readers or admins:
        raise InstallError("--reader/--admin change the host's accounts; they cannot be combined with --root")
    return install_files(root, flowd)


def install_main(args: argparse.Namespace) -> int:
    """`flowd --install-service`: print what was done and the next steps; 0, or 1 with one error line."""
    root = Path(args.root).resolve() if args.root else None
    try:
        flowd = args.flowd_path or find_flowd(sys.argv[0])
        steps = install(root=root, flowd=flowd, readers=args.reader or (), admins=args.admin or ())
    except InstallError as exc:
        print(f"flowd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"flowd: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"flowd service installed{f' under {root}' if root else ''}:")
    width = max(len(s.what) for s in steps)
    for step in steps:
        print(f"  {step.what:<{width}}  {step.outcome}")
    if root is None and (why := unreachable_by(flowd)):
        print(f"warning: user {SERVICE_USER} cannot run {flowd}: {why}; install flowd where every user can "
              "run it (e.g. a virtualenv under /opt) and run --install-service from there", file=sys.stderr)
    print("\n".join(next_steps(staged=root is not None)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m flowd.runtime.install --unit [--flowd-path PATH]`: print the unit (systemd/flowd.service is this output)."""
    p = argparse.ArgumentParser(prog="python -m flowd.runtime.install", description=main.__doc__)
    p.add_argument("--unit", action="store_true", required=True, help="print the systemd unit")
    p.add_argument("--flowd-path", default=CHECKED_IN_FLOWD, metavar="PATH",
                   help=f"absolute path of the flowd command (default {CHECKED_IN_FLOWD})")
    args = p.parse_args(argv)
    try:
        sys.stdout.write(unit_text(args.flowd_path))
    except InstallError as exc:
        print(f"flowd: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
