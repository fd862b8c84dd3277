"""Processes every harness shares (integration suite, benchmark, demo): waiting with a
deadline, the operator as a real process, namespaces and kubectl, S3, Prometheus, a TCP proxy."""
