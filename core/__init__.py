"""The shared core: the domain model both the webhook and the operator speak.

Nothing here imports the webhook or the operator. The core owns the vocabulary (severities,
phases, steps, lifecycle events), how an incident is named, and the one adapter through which
every component reaches the Kubernetes API.
"""
