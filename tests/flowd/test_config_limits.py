"""Configuration files built to hurt the loader: deep nesting, recursive and exploding YAML aliases, huge numbers,
text that cannot be encoded. `--check-config` prints one error line for each (FILE:LINE: path: message), and
a SIGHUP with such a file keeps the running configuration, logs one line and tells systemd READY=1 again
(a real sd_notify socket)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from fakes import FakeClock
from test_notify import Receiver, receiver, short_dir  # noqa: F401 - the sd_notify end, as systemd has it

from flowd.app import App
from flowd.config.diagnosis import check_config_main
from flowd.config.loader import MAX_TEXT, load_config
from flowd.config.yaml_text import MAX_VALUES
from flowd.config.overrides import with_overrides
from flowd.runtime.notify import Notifier, socket_address
from shell.client import Client

GOOD = "forwarding-options:\n  sampling:\n    input:\n      rate: 1\n"

ALIAS_BOMB = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
    f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(8))

HOSTILE = {
    "deep.conf": ("a { " * 3000 + "}" * 3000 + "\n", ":1: " + "a.a: syntax error: nested deeper than 64 levels"),
    "deep.yaml": ("a: " + "[" * 5000 + "]" * 5000 + "\n", ":1: YAML error: nested deeper than 64 levels"),
    "deep-map.yaml": ("a: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", ":1: YAML error: nested deeper than 64 "
                      "levels"),
    "deep-block.yaml": ("".join(" " * i + f"k{i}:\n" for i in range(100)), ":64: YAML error: nested deeper than "
                        "64 levels"),
    "recursive.yaml": ("a: &a [*a]\n", ":1: YAML error: alias *a is inside its own anchor &a (a recursive "
                       "structure)"),
    "bomb.yaml": (ALIAS_BOMB, f":6: f: more than {MAX_VALUES} values (aliases expand to that many)"),
    "digits.yaml": ("forwarding-options:\n  sampling:\n    input:\n      rate: " + "9" * 5000 + "\n",
                    ":4: YAML error: an integer of 5000 digits; at most 20 are accepted"),
    "digits.conf": ("forwarding-options { sampling { input { rate " + "9" * 5000 + "; } } }\n",
                    ":1: syntax error: a number of 5000 digits; at most 20 are accepted"),
    "surrogate.yaml": ('interfaces:\n  ge-2/3/0:\n    description: "bad \\ud800 text"\n',
                       ":3: interfaces.ge-2/3/0.description: 'bad \\\\ud800 text' is not valid Unicode (a lone "
                       "surrogate)"),
    "huge.yaml": ("# " + "x" * MAX_TEXT + "\n" + GOOD, f": {MAX_TEXT + 3 + len(GOOD)} characters; a configuration "
                  f"may have at most {MAX_TEXT}"),
}


def write(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text(HOSTILE[name][0], encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_check_config_prints_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    path = write(tmp_path, name)
    assert check_config_main(str(path)) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"{path}{HOSTILE[name][1]}\n")


def test_a_bad_file_on_reload_keeps_the_configuration_and_systemd_hears_ready_again(
        short_dir: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    config = short_dir / "flowd.yaml"

    async def main() -> None:
        clock = FakeClock()
        cfg = with_overrides(load_config(None), flow_servers=[("127.0.0.1", 9)], source_address="127.0.0.1")
        app = App(cfg, socket_path=str(short_dir / "flowd.sock"), clock=clock, replays=[],
                  notifier=Notifier(socket_address(receiver.name)), load_config=lambda: load_config(str(config)))
        runner = asyncio.ensure_future(app.run())
        assert (await receiver.next()).startswith(b"READY=1\n")
        running = app.probe.cfg
        async with Client(app.socket_path) as client:
            for name in [*sorted(HOSTILE), "raises"]:
                if name == "raises":  # whatever goes wrong, not only a ConfigError
                    app.load_config = lambda: (_ for _ in ()).throw(RecursionError("maximum recursion depth"))
                else:
                    config.write_text(HOSTILE[name][0], encoding="utf-8")
                caplog.clear()
                assert app.reload() is False
                [reloading, ready] = receiver.messages()
                assert reloading.startswith(b"RELOADING=1\n") and ready.startswith(b"READY=1\n"), name
                errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
                assert len(errors) == 1 and errors[0].exc_info is None, name
                message = errors[0].getMessage()
                assert "\n" not in message and message.startswith(
                    "configuration reload failed, keeping the running configuration: "), message
                assert app.probe.cfg is running
                assert (await client.call("accounting.flow"))["interfaces"]  # the control socket answers
        app.stop()
        await asyncio.wait_for(runner, 30)

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
