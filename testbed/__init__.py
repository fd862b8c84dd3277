"""The programs the tests, the demo and the benchmark run against: a local control plane and
a real node (cluster/), a TF Serving-compatible model server (modelserver/), the benchmark
(bench/) and the processes they share (support/). Not shipped with the operator."""
