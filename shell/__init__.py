"""flowcli: the Junos-like operational shell for flowd."""
