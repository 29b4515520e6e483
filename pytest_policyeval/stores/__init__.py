"""The only code that talks to remote stores' client libraries (boto3, wandb).

Policy sources (downloading) and result sinks (uploading) both go through here, so credentials,
endpoints and error messages are handled once. Each client library is imported on first use.
"""
