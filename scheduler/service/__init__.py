"""The running system around the placement core: the store, the control loop and the sites.

Layer: imports ``scheduler.core``; never a concrete adapter (those are found by name through the
``isthmus.adapters`` entry points) and never an edge (api, sdk, cli).
"""
