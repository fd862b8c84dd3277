"""The resource's contract: the ModelDeployment's spec and status models, every label,
annotation and child name, time formats, and the CRD generated from the models.

The lowest layer: imports nothing else from modeldeploy.
"""
