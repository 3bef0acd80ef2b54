"""The object store: one interface, two backends chosen by URI (``s3://`` and ``file://``).

Keys are ``/``-separated and relative to the store's root. Conditional writes (create only if
absent, replace only if unchanged) make the registry and the split ledger safe when several
pipelines share a store.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import filelock

from skillmaker.domain.layout import join_key
from skillmaker.errors import UserError
from skillmaker.fileio import write_atomic


@dataclass(frozen=True)
class ObjectInfo:
    """An object's key (relative to the store root), size in bytes and entity tag."""

    key: str
    size: int
    etag: str


class StoreError(UserError):
    """The store could not be reached or refused a request; the message names the key."""


class ObjectNotFound(StoreError):
    """No object has that key."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the object exists already, or changed since it was read."""


class Store(Protocol):
    """What every backend offers."""

    uri: str

    def get_bytes(self, key: str) -> bytes:
        """Give an object's bytes, or raise ``ObjectNotFound``."""
        ...

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        """Give an object's bytes and its entity tag, or raise ``ObjectNotFound``."""
        ...

    def put_bytes(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        """Give the entity tag of a written object; conditional writes raise ``PreconditionFailed``."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Give an object's info, or None when there is none."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Give every object whose key starts with ``prefix``, in key order."""
        ...

    def download(self, key: str, destination: Path) -> ObjectInfo:
        """Give the info of an object after writing it to a local file (atomically)."""
        ...

    def upload(self, source: Path, key: str) -> ObjectInfo:
        """Give the info of an object after uploading a local file."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object; no error when there is none."""
        ...


def md5_hex(data: bytes) -> str:
    """Give the MD5 of bytes as S3 reports it for single-part objects (an ETag, not security)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# S3 allows keys up to 1,024 bytes; Linux file names up to 255 bytes.
MAX_KEY_BYTES = 1024
MAX_COMPONENT_BYTES = 255


def key_problem(key: str) -> str | None:
    """Give why a key cannot name a file inside a folder (both backends refuse it), or None."""
    if not key:
        return "is empty"
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        return "is not UTF-8"
    problem = None
    if "\x00" in key:
        problem = "contains a NUL character"
    elif "\\" in key:
        problem = "contains a backslash"
    elif key.startswith("/"):
        problem = "is an absolute path"
    elif len(encoded) > MAX_KEY_BYTES:
        problem = f"is longer than {MAX_KEY_BYTES} bytes"
    for part in key.split("/"):
        if problem is not None:
            break
        if not part:
            problem = "has an empty component"
        elif part in (".", ".."):
            problem = f"has a {part!r} component"
        elif len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            problem = f"has a component longer than {MAX_COMPONENT_BYTES} bytes"
    return problem


def check_key(uri: str, key: str) -> str:
    """Give the key back when it is safe, or raise ``StoreError`` saying why it is not."""
    problem = key_problem(key)
    if problem is not None:
        raise StoreError(f"{uri}: unsafe key {key!r}: {problem}")
    return key


class FileStore:
    """A store in a local folder (``file:///path``): the embedded default."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(self.uri, key)

    def _info(self, key: str, path: Path) -> ObjectInfo:
        data = path.read_bytes()
        return ObjectInfo(key=key, size=len(data), etag=md5_hex(data))

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(locks / hashlib.sha256(key.encode()).hexdigest())):
            yield

    def get_bytes(self, key: str) -> bytes:
        """Give an object's bytes, or raise ``ObjectNotFound``."""
        return self.get_with_etag(key)[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        """Give an object's bytes and its entity tag, or raise ``ObjectNotFound``."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(f"{self.uri}: no object {key!r}") from None
        return data, md5_hex(data)

    def put_bytes(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        """Give the entity tag of a written object; conditional writes raise ``PreconditionFailed``."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (if_none_match or if_match):
            write_atomic(path, data)
            return md5_hex(data)
        with self._lock(key):
            exists = path.is_file()
            if if_none_match and exists:
                raise PreconditionFailed(f"{self.uri}: {key!r} exists already")
            if if_match is not None and (not exists or md5_hex(path.read_bytes()) != if_match):
                raise PreconditionFailed(f"{self.uri}: {key!r} changed since it was read")
            write_atomic(path, data)
        return md5_hex(data)

    def head(self, key: str) -> ObjectInfo | None:
        """Give an object's info, or None when there is none."""
        path = self._path(key)
        return self._info(key, path) if path.is_file() else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Give every object whose key starts with ``prefix``, in key order."""
        if not self.root.is_dir():
            return
        keys = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d != ".locks"]
            rel = Path(dirpath).relative_to(self.root)
            for name in filenames:
                key = (rel / name).as_posix() if rel.parts else name
                if key.startswith(prefix) and not name.startswith(".tmp-"):
                    keys.append(key)
        for key in sorted(keys):
            yield self._info(key, self.root / key)

    def download(self, key: str, destination: Path) -> ObjectInfo:
        """Give the info of an object after writing it to a local file (atomically)."""
        data, etag = self.get_with_etag(key)
        destination.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(destination, data)
        return ObjectInfo(key=key, size=len(data), etag=etag)

    def upload(self, source: Path, key: str) -> ObjectInfo:
        """Give the info of an object after uploading a local file."""
        data = source.read_bytes()
        return ObjectInfo(key=key, size=len(data), etag=self.put_bytes(key, data))

    def delete(self, key: str) -> None:
        """Remove an object; no error when there is none."""
        self._path(key).unlink(missing_ok=True)


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
                retries={"max_attempts": 8, "mode": "adaptive"},
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
        info = self.head(key)
        if info is None:
            raise ObjectNotFound(f"{self.uri}: no object {key!r}")
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=destination.parent)
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self._key(key), tmp, Config=self.transfer)
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


def open_store(uri: str, *, endpoint_url: str | None = None, region: str | None = None) -> Store:
    """Give the store at a URI: ``s3://bucket[/prefix]`` or ``file:///path``."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UserError(f"{uri}: a file URI needs three slashes (file:///path)")
        return FileStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if len(parsed.netloc) < 3:
            raise UserError(f"{uri}: bucket names have at least three characters")
        return S3Store(parsed.netloc, parsed.path, endpoint_url=endpoint_url, region=region)
    raise UserError(f"{uri}: unsupported store URI (use s3://bucket/prefix or file:///path)")
