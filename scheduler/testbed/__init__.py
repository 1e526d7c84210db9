"""A local Kubernetes testbed: real control-plane sites on loopback with kwok GPU nodes.

``versions`` pins the upstream releases (the only place); ``site`` starts and stops sites from
the binaries tools/testbed/build.py builds. Imports nothing of ``scheduler.core``.
"""
