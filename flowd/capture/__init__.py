"""Packet sources: the only package that touches capture files and capture sockets."""
