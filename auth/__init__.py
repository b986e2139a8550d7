"""API keys: key format, hashed storage, scopes and rate limits.

A package of its own that never imports `gateway`; the gateway wires it in.
"""
