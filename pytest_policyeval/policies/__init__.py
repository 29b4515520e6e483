"""Policies: a URI resolves to a loaded `Policy`; `Policy.actor(env)` gives the batched callable.

Nothing here imports torch at module level: the plugin imports this package on every pytest run.
"""

from pytest_policyeval.policies.base import Actor, Policy, PolicyLoadError
from pytest_policyeval.policies.uri import LoadOptions, load_policy, policy_label

__all__ = ["Actor", "LoadOptions", "Policy", "PolicyLoadError", "load_policy", "policy_label"]
