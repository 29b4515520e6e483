"""`policyeval serve` and `policyeval worker`: evaluations requested over HTTP or by webhooks,
kept in a durable queue (`store.py`), claimed and run by workers.

`webhooks.py` checks who is asking (bearer tokens, GitHub-style signatures) and turns each
sender's payload into an evaluation request (`requests.py`) before anything is stored.
"""
