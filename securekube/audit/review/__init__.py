"""Audit log review: query, summarise, tell the story of, derive RBAC from and report on audit.k8s.io/v1 logs.

Works on securekube's logs and on upstream kube-apiserver log-backend files alike (one Event per
line, plain or gzipped, rotated sets, stdin). `reader` is the hot path; every command builds on it.
"""
