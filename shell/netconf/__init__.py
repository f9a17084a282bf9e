"""NETCONF over SSH for Junos automation (PyEZ, ncclient, Ansible): the shell's commands and renderers behind RFC 6241.

A front end of the shell, like the interactive CLI: it reaches the daemon only through the control
protocol. The daemon starts it (`python -m shell.netconf`) when `flowd netconf { ... }` is configured.
"""
