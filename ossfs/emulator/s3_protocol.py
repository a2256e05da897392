"""The S3 dialect's request vocabulary: operation names, sub-resources, errors and XML helpers.

Responsibility: `classify` names the ``S3:<Operation>`` a request is logged under, `subresource`
finds the S3 sub-resource a query names, `S3Error` and `NotModified` are the refusals and the
304 the handler answers, and `s3_xml`/`text_child` build XML in S3's namespace.

Deliberately not done here: answering requests, storage access and anything OSS-specific
(`ossfs.emulator.s3` is the handler).
"""

from __future__ import annotations

from typing import Final
from xml.etree import ElementTree as ET

from ossfs.emulator.httpbase import Request

S3_NS: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
# Query names that make a GET/HEAD mean something other than "read the object / list the bucket".
_SUBRESOURCES: Final = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "attributes",
        "cors",
        "delete",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "legal-hold",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "partNumber",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "restore",
        "retention",
        "select",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versioning",
        "versions",
        "website",
    }
)
_WRITE_OPS: Final = {
    "PUT": "S3:Put",
    "POST": "S3:Post",
    "DELETE": "S3:Delete",
    "OPTIONS": "S3:Options",
}


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class NotModified(Exception):
    """304: the conditional GET/HEAD matched; carries the validators to send."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        super().__init__("304")
        self.headers = headers


def s3_xml(tag: str) -> ET.Element:
    return ET.Element(tag, xmlns=S3_NS)


def text_child(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def subresource(req: Request) -> str | None:
    """The first S3 sub-resource named in the query (``versionId`` is handled apart)."""
    for name, _ in req.query:
        if name in _SUBRESOURCES:
            return name
    return None


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("-"))


def not_implemented() -> S3Error:
    return S3Error(
        501, "NotImplemented", "A header you provided implies functionality that is not implemented"
    )


def classify(req: Request) -> str:
    """The ``S3:<Operation>`` name a request is logged under (whether or not it succeeds)."""
    if req.method not in ("GET", "HEAD"):
        return _WRITE_OPS.get(req.method, "S3:Unknown")
    if req.bucket is None:
        return "S3:ListBuckets"
    sub = subresource(req)
    head = req.method == "HEAD"
    if req.key is None:
        if head:
            return "S3:HeadBucket"
        if sub == "location":
            return "S3:GetBucketLocation"
        if sub == "uploads":
            return "S3:ListMultipartUploads"
        if sub == "versions":
            return "S3:ListObjectVersions"
        if sub is not None:
            return "S3:GetBucket" + _camel(sub)
        return "S3:ListObjectsV2" if req.param("list-type") == "2" else "S3:ListObjects"
    if sub == "uploadId":
        return "S3:ListParts"
    if sub is not None:
        return "S3:GetObject" + _camel(sub)
    return "S3:HeadObject" if head else "S3:GetObject"
