"""End-to-end tests against a real etcd, kube-apiserver and Traefik (see README.md)."""
