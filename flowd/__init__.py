"""flowd: Junos-style active flow monitoring for Linux."""

__version__ = "0.1.0"
