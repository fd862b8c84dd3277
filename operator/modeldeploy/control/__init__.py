"""Running the operator: watches feed the cache and the work queue; each pass observes
the cache, asks ``probes`` what the pods say, asks ``rollout`` for a plan, applies what
``children`` makes of it, derives status and writes it; plus the operator's own writes,
the kopf wiring, settings, metrics and notifications.

May import every other layer except ``cli`` and ``fetcher``.
"""
