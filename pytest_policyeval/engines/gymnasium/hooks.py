"""The gymnasium engine, registered as a hook implementation."""
