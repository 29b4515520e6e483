"""s3://bucket/key policies through boto3 (see storage/s3.py for endpoints and credentials).

The object's ETag is compared with the cached copy's before anything is downloaded; the
download is checked against the object's length. Unreachable S3 with a cached copy: offline use.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from pytest_policyeval.policies.sources import Fetched, FetchError
from pytest_policyeval.policies.sources.cache import DataCache, blob_digest, bounded, check_announced
from pytest_policyeval.storage import s3 as store

CHUNK = 1 << 20


class S3Source:
    scheme = "s3"

    def fetch(self, uri: str, cache: DataCache, options: Any = None) -> Fetched:
        bucket, key = store.split_s3_uri(uri)
        ref = cache.ref(self.scheme, uri)
        client = store.client()
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # boto3's errors are explained by the store
            error = store.explain(uri, exc, bucket)
            if isinstance(error, store.S3Unreachable) and ref:
                return cache.cached(uri, ref, offline=True)
            if isinstance(error, store.S3Missing) and not store.bucket_exists(client, bucket):
                error = store.S3Error(f"{uri}: no such bucket '{bucket}'")
            if isinstance(error, store.S3Unreachable):
                raise FetchError(f"{error} and there is no cached copy") from None
            raise FetchError(str(error)) from None
        etag = head.get("ETag")
        version = head.get("VersionId") or etag
        if ref and ref.get("etag") == etag:
            return cache.cached(uri, ref, version=version)
        size = head.get("ContentLength")
        check_announced(uri, size)

        def complete(path: Path) -> None:
            if size is not None and path.stat().st_size != size:
                raise FetchError(f"{uri}: download cut short ({path.stat().st_size} of {size} bytes)")

        try:
            body = client.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"]
            path = cache.store(bounded(body.iter_chunks(CHUNK), uri), PurePosixPath(key).name, check=complete)
        except FetchError:
            raise
        except Exception as exc:
            raise FetchError(str(store.explain(uri, exc, bucket))) from None
        fetched = Fetched(uri, path, blob_digest(path), version)
        cache.set_ref(self.scheme, uri, fetched, etag=etag)
        return fetched
