"""Audit: which requests are recorded (policy), what a record holds (event), where it goes (log,
webhook), and how a log is proven complete and unaltered (chain, verify).

Upstream formats are spoken unchanged: audit.k8s.io/v1 Policy files and Event/EventList objects.
Beyond upstream, the log is hash-chained with Ed25519-signed checkpoints (chain.py) while every
line stays an Event that kube-apiserver's own tools read. Review tools live in `review/`.
"""
