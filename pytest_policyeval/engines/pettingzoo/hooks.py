"""The pettingzoo engine, registered as a hook implementation."""
