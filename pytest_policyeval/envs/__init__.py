"""Environments: one adapter module per engine; everything else sees only `EnvSpec` and arrays."""
