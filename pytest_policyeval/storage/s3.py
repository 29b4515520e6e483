"""S3 through boto3: `s3://bucket/key` URIs, one client, and errors turned into one message.

The endpoint, region and credentials come from boto3's usual places (environment variables such
as AWS_ENDPOINT_URL, AWS_PROFILE, ~/.aws), so S3-compatible servers work unchanged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pytest_policyeval.storage import StorageError


class S3Error(StorageError):
    """An S3 URI that cannot be read or written; the message names the URI and the cause."""


class S3Unreachable(S3Error):
    """No answer from the endpoint (network down, wrong endpoint): a cached copy may stand in."""


class S3Missing(S3Error):
    """No such object (S3 does not say whether the bucket exists either)."""


def split_s3_uri(uri: str, need_key: bool = True) -> tuple[str, str]:
    parts = urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if parts.scheme != "s3" or not bucket or (need_key and not key):
        raise S3Error(f"{uri}: expected s3://BUCKET/KEY")
    return bucket, key


def client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise S3Error("s3:// needs boto3: pip install 'pytest-policyeval[s3]'") from None
    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=10, read_timeout=60)
    return boto3.session.Session().client("s3", config=config)


def explain(uri: str, exc: Exception, bucket: str) -> S3Error:
    """One message for what boto3 raised while working on `uri`."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, NoCredentialsError):
        return S3Error(
            f"{uri}: no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        )
    if isinstance(exc, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)):
        return S3Unreachable(f"{uri}: cannot reach S3 ({exc})")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket",):
            return S3Error(f"{uri}: no such bucket '{bucket}'")
        if code in ("404", "NoSuchKey", "NotFound"):
            return S3Missing(f"{uri}: no such object")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return S3Error(f"{uri}: access denied ({code}); check the credentials and the bucket policy")
        return S3Error(f"{uri}: S3 answered {code}: {exc}")
    return S3Error(f"{uri}: {type(exc).__name__}: {exc}")


def bucket_exists(s3: Any, bucket: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        return False
    return True
