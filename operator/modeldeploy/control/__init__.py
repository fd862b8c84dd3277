"""Running the operator: watches (kopf's for ModelDeployments, our reflectors for their
children) feed the cache and the work queue; each pass
observes the cache, asks ``rollout`` for a plan, applies what ``build`` makes of it,
derives status and writes it. The only package that talks to the API server.

May import ``api``, ``rollout`` and ``build``.
"""
