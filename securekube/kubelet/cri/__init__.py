"""CRI runtime.v1: the wire schema (generated stubs) and a small client over a unix socket."""
