"""Clusters with no Docker: a local control plane (kube-apiserver, etcd, kwok) and a real
node (kubelet, containerd, runc), and the images they run, built with buildah."""
