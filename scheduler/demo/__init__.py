"""``isthmus demo``: the service on this machine, one real Ray site, simulated others.

Layer: an edge (like the CLI). It starts what a deployment would run — the store, the control
loop, the HTTP API — plus a local Ray head, and drives them through the API as a user would.
"""
