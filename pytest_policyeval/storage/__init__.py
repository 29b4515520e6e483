"""Remote storage: the only code that talks to the stores' client libraries (boto3, wandb).

Policy sources (downloading a checkpoint: policies/sources/) and result sinks (uploading a run's
files: reporting/sinks.py) both go through here, so credentials, endpoints and error messages
are handled once. Each client library is imported on first use.
"""


class StorageError(Exception):
    """A store that cannot be reached or read or written: the message names the URI and the cause."""
