"""The node agent: runs the pods bound to its node through CRI, with their security context enforced."""
