"""Placeholder until the gymnasium engine lands."""
