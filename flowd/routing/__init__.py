"""Routing: route sources (BGP through a supervised speaker, the kernel FIB, prefix files) and the
longest-prefix-match tables that give each exported flow its AS numbers, masks and next hops.

May import flowd.model and flowd.config.schema only.
"""
