"""The webhook: Alertmanager's notifications in, Rescue resources out.

It is the product's front door during an incident, so it keeps Alertmanager's delivery contract
exactly (``app``): 2xx for anything accepted, duplicates included; 4xx only for a request that
can never succeed; 5xx when the API server cannot take the write, so Alertmanager retries and no
alert is lost.
"""
