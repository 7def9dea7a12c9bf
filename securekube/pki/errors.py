"""The exception every PKI operation raises for a problem a person must fix.

Messages name files and certificates, never key material: callers may print them.
"""


class PkiError(Exception):
    """A PKI directory, profile or request that cannot be used as it is."""
