"""Placeholder until the pettingzoo engine lands."""
