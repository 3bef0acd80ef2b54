"""The S3 backend of the object store (``s3://bucket/prefix``), through boto3.

Endpoint and region come from the caller (the context reads them from the environment);
anything else (credentials, retries) is boto3's own configuration.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from skillmaker.adapters.store import (
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    check_key,
)
from skillmaker.domain.layout import join_key


class S3Store:
    """A store in an S3 bucket under a prefix (``s3://bucket/prefix``), through boto3."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_concurrency: int = 8,
        client: Any = None,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client: Any = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,  # else boto3's own AWS_ENDPOINT_URL* settings
            region_name=region or None,
            config=Config(
                # Standard mode: the adaptive mode's client-side rate limiter slowed a pull with
                # 5% SlowDown answers more than six times; standard retries only the throttled.
                retries={"max_attempts": 8, "mode": "standard"},
                max_pool_connections=max(10, max_concurrency * 2),
            ),
        )
        self.transfer = TransferConfig(
            multipart_threshold=16 * 1024 * 1024,
            multipart_chunksize=16 * 1024 * 1024,
            max_concurrency=max_concurrency,
        )

    def _key(self, key: str) -> str:
        return join_key(self.prefix, check_key(self.uri, key))

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def _fail(self, exc: Exception, key: str) -> StoreError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound"):
                return ObjectNotFound(f"{self.uri}: no object {key!r}")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return PreconditionFailed(f"{self.uri}: conditional write of {key!r} lost ({code})")
            if code == "NoSuchBucket":
                return StoreError(f"{self.uri}: bucket {self.bucket!r} does not exist")
            return StoreError(f"{self.uri}: {key!r}: {code}: {exc}")
        return StoreError(f"{self.uri}: {key!r}: {exc}")

    def get_bytes(self, key: str) -> bytes:
        """Give an object's bytes, or raise ``ObjectNotFound``."""
        return self.get_with_etag(key)[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        """Give an object's bytes and its entity tag, or raise ``ObjectNotFound``."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read(), str(response["ETag"]).strip('"')
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, key) from None

    def put_bytes(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        """Give the entity tag of a written object; conditional writes raise ``PreconditionFailed``."""
        from botocore.exceptions import BotoCoreError, ClientError

        extra: dict[str, Any] = {}
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if if_match is not None:
            extra["IfMatch"] = f'"{if_match}"'
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, **extra
            )
        except (ClientError, BotoCoreError) as exc:
            error = self._fail(exc, key)
            if if_match is not None and isinstance(error, ObjectNotFound):
                # S3 answers 404 when the object to replace is gone; to the caller it changed.
                message = f"{self.uri}: {key!r} was deleted since it was read"
                raise PreconditionFailed(message) from None
            raise error from None
        return str(response["ETag"]).strip('"')

    def head(self, key: str) -> ObjectInfo | None:
        """Give an object's info, or None when there is none."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            error = self._fail(exc, key)
            if isinstance(error, ObjectNotFound):
                return None
            raise error from None
        except BotoCoreError as exc:
            raise self._fail(exc, key) from None
        return ObjectInfo(key, int(response["ContentLength"]), str(response["ETag"]).strip('"'))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Give every object whose key starts with ``prefix``, in key order."""
        from botocore.exceptions import BotoCoreError, ClientError

        full = (
            join_key(self.prefix, prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        )
        if prefix.endswith("/") and not full.endswith("/"):
            full += "/"
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        self._rel(item["Key"]), int(item["Size"]), str(item["ETag"]).strip('"')
                    )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, prefix) from None

    def download(self, key: str, destination: Path) -> ObjectInfo:
        """Give the info of an object after writing it to a local file (atomically)."""
        from botocore.exceptions import BotoCoreError, ClientError

        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=destination.parent)
        os.close(fd)
        try:
            # One GET: its answer carries the size and entity tag (no HEAD before it). A large
            # object is fetched again in parallel ranged parts by the transfer manager.
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            info = ObjectInfo(key, int(response["ContentLength"]), str(response["ETag"]).strip('"'))
            body = response["Body"]
            if info.size > self.transfer.multipart_threshold:
                body.close()
                self.client.download_file(self.bucket, self._key(key), tmp, Config=self.transfer)
            else:
                with Path(tmp).open("wb") as handle:
                    for chunk in body.iter_chunks(1024 * 1024):
                        handle.write(chunk)
            Path(tmp).replace(destination)
        except (ClientError, BotoCoreError) as exc:
            Path(tmp).unlink(missing_ok=True)
            raise self._fail(exc, key) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return info

    def upload(self, source: Path, key: str) -> ObjectInfo:
        """Give the info of an object after uploading a local file."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(str(source), self.bucket, self._key(key), Config=self.transfer)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, key) from None
        info = self.head(key)
        assert info is not None
        return info

    def delete(self, key: str) -> None:
        """Remove an object; no error when there is none."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, key) from None
