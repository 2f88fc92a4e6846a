"""Rescue: incident response for Kubernetes, from an Alertmanager alert to a post-mortem.

The package maps the repository's top-level folders under one namespace so that the folder
``operator/`` is imported as ``rescue.operator`` and never shadows the standard library's
``operator``: ``rescue/core``, ``rescue/webhook`` and ``rescue/operator`` are symbolic links to
the folders of the same names. Layers point one way (``lint-imports`` holds them): the command
line on top, the webhook and the operator beside each other, the shared core below both.
"""

__version__ = "0.1.0"
