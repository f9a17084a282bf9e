"""The running configuration's statements and names for operational mode's Tab, `?` and statement checks.

Fetched from the daemon (`config.schema` once per connection, `system.configuration` once per command
line) only when a line first reaches a configuration statement or a configured name (`show configuration
...`, `show firewall filter <Tab>`), so other commands cost no request; configuration mode keeps its own
candidate's (shell.configmode).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowd.syntax.names import Configuration
from shell.client import Client, ClientError
from shell.render.configuration import revive


@dataclass(slots=True)
class ActiveConfiguration:
    """The configuration Tab and `?` draw on, for the command line being typed."""

    client: Client
    schema: Mapping[str, Any] | None = None
    config: Configuration | None = None
    fetched: bool = False  # asked for during this command line (whatever the answer)

    def forget(self) -> None:
        """A new command line: the configuration may have changed since."""
        self.config, self.fetched = None, False

    async def ensure(self) -> Configuration | None:
        """The configuration, fetched on the first call of the command line (None when the daemon has none)."""
        if self.fetched:
            return self.config
        self.fetched = True
        try:
            if self.schema is None:
                self.schema = (await self.client.call("config.schema"))["schema"]
            result = await self.client.call("system.configuration")
            self.config = Configuration(self.schema, revive(result["config"]))
        except (ClientError, KeyError, TypeError):
            self.config = None
        return self.config
