"""The scheduler: binds pending pods to nodes that can run them."""
