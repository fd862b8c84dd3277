"""A TensorFlow Serving-compatible model server for tests: TF Serving's command line,
config files, REST and gRPC APIs and metric names, running real SavedModels with real
TensorFlow.

A test double, not part of the product: production pods run ``tensorflow/serving``,
whose binary no package registry serves. One process can also stand in for any number
of simulated pods (``fleet``), each on its own loopback IP.
"""
