"""The query API (`logweave api`): reads stored lines and closed traces back from a store.

A layer of its own beside app/ (the worker): it imports the stores' clients and sinks' helpers,
never faust, and no worker module imports it.
"""
