"""A generic Kubernetes layer: the API client and its credentials, the kind table's shape,
the watch cache, reflectors, the work queue and Lease-based leader election.

Imports nothing else from modeldeploy: it knows nothing of ModelDeployments.
"""
