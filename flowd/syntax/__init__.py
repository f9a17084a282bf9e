"""Junos configuration text and statement trees: parse, print, compare, and walk the statement schema.

Pure and shared with the shell; imports nothing else of flowd.
"""
