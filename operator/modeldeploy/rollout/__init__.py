"""Deciding a rollout: which versions run at what size, which serves, how a canary moves
(pure functions of spec, observation, check results and now), and the checks behind
small interfaces that feed it: the model gate and canary analysis.

May import only ``api``.
"""
