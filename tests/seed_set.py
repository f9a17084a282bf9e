"""The seed's stanza (etc/seed-sampling.conf) as the `set` commands an operator types into an empty configuration.

Only the flow server differs: FLOW_SERVER stands for the test's collector (the seed's 10.60.2.1 is never
contacted).
"""

from __future__ import annotations

from typing import Final

SEED_SET: Final = """\
set interfaces sp-2/0/0 unit 0 family inet address 10.5.5.1/32 destination 10.5.5.2
set interfaces fe-1/0/0 unit 0 family inet address 10.60.2.2/30
set interfaces ge-2/3/0 unit 0 family inet filter input catch_all
set interfaces ge-2/3/0 unit 0 family inet address 10.1.1.1/20
set interfaces ge-3/0/0 unit 0 family inet address 10.2.2.1/24
set forwarding-options sampling input rate 1
set forwarding-options family inet output flow-server FLOW_SERVER port PORT
set forwarding-options family inet output flow-server FLOW_SERVER version 5
set forwarding-options family inet output flow-inactive-timeout 15
set forwarding-options family inet output flow-active-timeout 60
set forwarding-options family inet output interface sp-2/0/0 engine-id 5
set forwarding-options family inet output interface sp-2/0/0 engine-type 55
set forwarding-options family inet output interface sp-2/0/0 source-address 10.60.2.2
set firewall family inet filter catch_all term default then sample
set firewall family inet filter catch_all term default then count counter1
set firewall family inet filter catch_all term default then accept
"""


# The nearest to an empty configuration flowd starts with (it refuses a file with no statement at all): the
# default flow-table size, which samples and exports nothing.
NEARLY_EMPTY: Final = "flowd { flow-table { max-flows 1000000; } }\n"


def seed_set(server: str = "127.0.0.1", port: int = 2055) -> str:
    """The lines with the flow server at ``server``:``port``."""
    return SEED_SET.replace("FLOW_SERVER", server).replace("PORT", str(port))
