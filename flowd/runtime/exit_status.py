"""flowd's exit statuses: one per outcome, with the BSD sysexits values, and the text that documents them.

`flowd --help` prints `epilog()`; docs/operator-guide.md carries the same lines (a test checks both).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class ExitStatus(IntEnum):
    """The sysexits(3) values, named as there without `EX_` (a script tests `$? -eq 65` for a damaged capture)."""

    OK = 0
    USAGE = 64
    DATAERR = 65
    NOINPUT = 66
    UNAVAILABLE = 69
    SOFTWARE = 70
    OSERR = 71
    NOPERM = 77
    CONFIG = 78


MEANING: Final[dict[ExitStatus, str]] = {
    ExitStatus.OK: "success (--check-config: the configuration is valid)",
    ExitStatus.USAGE: "the command line is wrong: an unknown option, a bad value, options that do not go together",
    ExitStatus.DATAERR: "(--read) the capture file is damaged, or of an unsupported format or version: every packet "
                     "before the damage was accounted and exported",
    ExitStatus.NOINPUT: "(--read) the capture file cannot be opened or read",
    ExitStatus.UNAVAILABLE: "a flow server's socket cannot be set up, or (--read) every export to a flow server "
                            "failed",
    ExitStatus.SOFTWARE: "the daemon stopped because one of its tasks or capture workers failed (the cached flows "
                         "were still exported), or the --demo daemon did not start",
    ExitStatus.OSERR: "the control socket, a live capture or the service installation could not be set up",
    ExitStatus.NOPERM: "permission denied (the control socket's directory, a file to install)",
    ExitStatus.CONFIG: "the configuration is invalid or cannot be read (--check-config prints every error)",
}


def epilog(width: int = 100) -> str:
    """The `exit status:` block of `flowd --help`, one code per paragraph, in code order."""
    import textwrap  # only when the help is printed

    return "exit status:\n" + "\n".join(
        textwrap.fill(MEANING[code], width, initial_indent=f"  {int(code):>3}  ", subsequent_indent=" " * 7)
        for code in sorted(ExitStatus))


def markdown() -> str:
    """The same as a Markdown table (docs/operator-guide.md, section "Exit status")."""
    rows = [f"| {int(code)} | `EX_{code.name}` | {MEANING[code]} |" for code in sorted(ExitStatus)]
    return "\n".join(["| status | sysexits name | meaning |", "|---|---|---|", *rows])
