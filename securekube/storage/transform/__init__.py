"""Encryption at rest, compatible with kube-apiserver's EncryptionConfiguration and byte format.

Start at config.py (`load_encryption_config`, `EncryptionConfig.transformer_for`) and
rotation.py (staged key rotation); interfaces.py holds the `Transformer` protocol and errors.
"""
