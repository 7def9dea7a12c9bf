"""securekube: a security-hardened, Kubernetes-API-compatible lab cluster."""

__version__ = "0.1.0"
