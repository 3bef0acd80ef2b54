"""The value types of the skill config: slugs, e-mails, store URIs, one-line text, OCI references."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STORE_URI = re.compile(r"^(?:s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/.*)?|file:///.*)$")
_WEIGHTS_URI = re.compile(r"^(?:s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+|file:///.+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# OCI image references (the grammar of github.com/distribution/reference, without IPv6 hosts).
_HOST_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"{_HOST_PART}(?:\.{_HOST_PART})*(?::[0-9]+)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE_REF = re.compile(rf"(?:{_DOMAIN}/)?{_PATH}(?:/{_PATH})*(?::{_TAG})?(?:@{_DIGEST})?")
_REGISTRY = re.compile(rf"{_DOMAIN}(?:/{_PATH})*")
_LABEL = re.compile(r"[A-Za-z0-9_.\-&|!() ]+")


def _line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must be one line (no newlines or other control characters)")
    return value


def _image_ref(value: str) -> str:
    if not _IMAGE_REF.fullmatch(value) or len(value) > 255:
        raise ValueError("must be an OCI image reference, e.g. python:3.11-slim or host/name:tag")
    return value


def _registry(value: str) -> str:
    if not _REGISTRY.fullmatch(value) or len(value) > 255:
        raise ValueError("must be an OCI registry: host[:port][/path], e.g. registry.example.com")
    return value


def _label(value: str) -> str:
    if not _LABEL.fullmatch(value) or not value.strip():
        raise ValueError(
            "must be a Jenkins label expression: letters, digits, _ . - and the operators "
            "&& || ! ( ) with spaces"
        )
    return value


def _slug(value: str) -> str:
    if len(value) < 2 or len(value) > 40 or not _SLUG.match(value):
        raise ValueError(
            "must be 2 to 40 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return value


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("must be an e-mail address")
    return value


def _store_uri(value: str) -> str:
    if not _STORE_URI.fullmatch(value) or _CONTROL.search(value):
        raise ValueError("must be a store URI: s3://bucket[/prefix] or file:///absolute/path")
    return value.rstrip("/") if value not in ("file:///",) else value


def _weights(value: str) -> str:
    if value in ("none", "imagenet") or (
        _WEIGHTS_URI.fullmatch(value) and not _CONTROL.search(value)
    ):
        return value
    raise ValueError(
        'must be "none", "imagenet", or the URI of a weights file (s3://… or file:///…)'
    )


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Slug = Annotated[str, AfterValidator(_slug)]
Email = Annotated[str, AfterValidator(_email), AfterValidator(_line)]
StoreUri = Annotated[str, AfterValidator(_store_uri)]
WeightsRef = Annotated[str, AfterValidator(_weights)]
Text = Annotated[str, AfterValidator(_nonblank), AfterValidator(_line)]
"""One non-blank line of text."""
Line = Annotated[str, AfterValidator(_line)]
ImageRef = Annotated[str, AfterValidator(_image_ref)]
Registry = Annotated[str, AfterValidator(_registry)]
Label = Annotated[str, AfterValidator(_label)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Amount = Annotated[float, Field(ge=0.0, le=1.0)]
