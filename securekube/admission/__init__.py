"""Admission: the checks between authorization and storage (chain, Pod Security, NodeRestriction, Rego)."""
