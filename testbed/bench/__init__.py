"""The benchmark: convergence against the contract floor, API economy, model server costs,
pre-traffic checks and failover, each a ``python -m testbed.bench.<name>`` program."""
