"""The daemon's plumbing: shards, the probe, capture workers, inputs, notify, log, batch mode, demo.

May import every flowd package below it (model, native, config, core, capture, export, routing, testing).
"""
