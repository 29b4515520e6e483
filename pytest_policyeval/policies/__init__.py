"""Policies: a URI resolves to a loaded `Policy`; `Policy.actor(env)` gives the batched callable.

Nothing here imports torch at module level: the plugin imports this package on every pytest run.
"""

from pytest_policyeval.policies.base import Actor, LoadOptions, Policy, PolicyLoadError
from pytest_policyeval.policies.naming import policy_label
from pytest_policyeval.policies.uri import load_policy

__all__ = ["Actor", "LoadOptions", "Policy", "PolicyLoadError", "load_policy", "policy_label"]
