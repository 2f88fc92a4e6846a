"""The operator: kopf handlers that walk each Rescue through its lifecycle.

Handlers stay thin: they hand the resource to plain functions (``lifecycle``) that decide what
changes, and only then talk to the API. The decisions are pure so they can be tested without a
cluster and so that running them twice on the same state decides nothing new.
"""
