"""Policy engines (Rego/OPA), the loader for `policies/`, and the runner for their tests."""
