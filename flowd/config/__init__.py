"""Configuration: the schema (`schema`), loading and validation (`loader`, `build`, `firewall`,
`checker`), command-line overrides (`overrides`) and the generated reference (`docs`).

Every other layer imports only `flowd.config.schema`; the daemon's composition (app, __main__,
runtime) also uses the loader and overrides.
"""
