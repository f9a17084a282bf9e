"""The daemon's control socket: framing, server and RPC methods."""
