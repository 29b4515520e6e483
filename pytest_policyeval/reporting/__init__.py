"""Reporting: the terminal summary and the result files, all written by the controller."""
