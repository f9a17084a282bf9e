"""The names Junos accepts for IP protocols and ports in a firewall term's `from` conditions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# IP protocol names Junos accepts in `from protocol` (IANA numbers).
PROTOCOLS: Final[Mapping[str, int]] = {
    "hop-by-hop": 0, "icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6": 41,
    "routing": 43, "fragment": 44, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "icmp6": 58,
    "no-next-header": 59, "dstopts": 60, "ospf": 89, "pim": 103, "vrrp": 112, "sctp": 132,
}

# Port names Junos accepts in `from source-port / destination-port / port` (IANA numbers).
PORTS: Final[Mapping[str, int]] = {
    "afs": 1483, "bgp": 179, "biff": 512, "bootpc": 68, "bootps": 67, "cmd": 514, "cvspserver": 2401,
    "dhcp": 67, "domain": 53, "eklogin": 2105, "ekshell": 2106, "exec": 512, "finger": 79, "ftp": 21,
    "ftp-data": 20, "http": 80, "https": 443, "ident": 113, "imap": 143, "kerberos-sec": 88,
    "klogin": 543, "kpasswd": 761, "krb-prop": 754, "krbupdate": 760, "kshell": 544, "ldap": 389,
    "ldp": 646, "login": 513, "mobileip-agent": 434, "mobilip-mn": 435, "msdp": 639,
    "netbios-dgm": 138, "netbios-ns": 137, "netbios-ssn": 139, "nfsd": 2049, "nntp": 119,
    "ntalk": 518, "ntp": 123, "pop3": 110, "pptp": 1723, "printer": 515, "radacct": 1813,
    "radius": 1812, "rip": 520, "rkinit": 2108, "smtp": 25, "snmp": 161, "snmptrap": 162,
    "snpp": 444, "socks": 1080, "ssh": 22, "sunrpc": 111, "syslog": 514, "tacacs": 49,
    "tacacs-ds": 65, "talk": 517, "telnet": 23, "tftp": 69, "timed": 525, "who": 513, "xdmcp": 177,
    "zephyr-clt": 2103, "zephyr-hm": 2104, "zephyr-srv": 2102,
}
