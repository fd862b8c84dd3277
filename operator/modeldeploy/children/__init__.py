"""The desired children: pure functions from a ModelDeployment and its rollout plan to the
child manifests and TF Serving configuration it needs. No I/O, no clock; deterministic names.

May import ``api`` and ``rollout`` (for the plan's types).
"""
