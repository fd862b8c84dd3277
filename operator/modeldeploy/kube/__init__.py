"""A generic Kubernetes layer: the API client and its credentials, the kind table's shape,
the watch cache, reflectors, the work queue and Lease-based leader election.

Imports nothing else from modeldeploy: it knows nothing of ModelDeployments. What it
serves is given to it: the kind table, the label that names an object's owner, the
field manager of an apply.

Why the operator has its own client, reflectors and lease instead of the ``kubernetes``
package and kopf's watches for the children: the ``kubernetes`` package's generated
client is a large import, held in every replica's memory, for the handful of requests on
known paths the operator sends; and kopf starts every watch, and every re-watch after a
gap, with a list it reports as events, never reporting what was deleted during the gap,
with per-event handler machinery that cost more than the cache update itself. The
children's watches (most of the watch events) are therefore reflectors that resume from
the last version seen; kopf still watches the owning resources, since it knows the
namespaces the operator serves.
"""
