"""Every network call the decisions need, each bounded in time and bytes: the model gate's
question to TF Serving, the canary's traffic (pod metrics or Prometheus), and the
pre-traffic requests (signature, warm-up, golden requests).

May import ``api`` and ``rollout`` (the pure parsers and the check types they fill).
"""
