"""modeldeploy: a Kubernetes operator that rolls out TensorFlow Serving model versions."""

__version__ = "0.1.0"
