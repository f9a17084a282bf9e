"""The optional compiled extensions: ``_flowtable`` (the flow cache in C). Imports nothing of flowd."""
