"""OSS-shaped errors: the exception the handlers raise and the ``<Error>`` XML they answer with."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Final
from xml.etree import ElementTree as ET

from ossfs.emulator.listing import xml_document

# EC values seen in OSS documentation and captures; codes without a known EC get a generic one.
_EC: Final = {
    "NoSuchKey": "0026-00000001",
    "NoSuchBucket": "0015-00000101",
    "InvalidObjectState": "0016-00000404",
    "AccessDenied": "0003-00000001",
    "SignatureDoesNotMatch": "0002-00000040",
    "InvalidAccessKeyId": "0002-00000902",
    "RequestTimeTooSkewed": "0002-00000504",
    "InvalidRange": "0016-00000802",
    "PreconditionFailed": "0026-00000010",
    "RestoreAlreadyInProgress": "0016-00000406",
    "InvalidDigest": "0016-00000103",
    "FileAlreadyExists": "0016-00000121",
    "MethodNotAllowed": "0017-00000001",
    "InvalidBucketName": "0015-00000001",
    "BucketNotEmpty": "0015-00000301",
    "InvalidArgument": "0017-00000208",
    "OperationNotSupported": "0016-00000407",
    "SlowDown": "0003-00000002",
    "InternalError": "0001-00000001",
}
_GENERIC_EC: Final = "0000-00000000"


class OssError(Exception):
    """An error answer: HTTP ``status``, OSS ``code``/``message``, extra ``<Error>`` children."""

    def __init__(
        self, status: int, code: str, message: str, extra: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})

    @property
    def ec(self) -> str:
        return _EC.get(self.code, _GENERIC_EC)


def no_such_key(key: str) -> OssError:
    return OssError(404, "NoSuchKey", "The specified key does not exist.", {"Key": key})


def no_such_bucket(bucket: str) -> OssError:
    return OssError(
        404, "NoSuchBucket", "The specified bucket does not exist.", {"BucketName": bucket}
    )


def error_xml(err: OssError, *, request_id: str, host_id: str) -> bytes:
    root = ET.Element("Error")
    for tag, text in (("Code", err.code), ("Message", err.message), ("RequestId", request_id)):
        ET.SubElement(root, tag).text = text
    ET.SubElement(root, "HostId").text = host_id
    for tag, text in err.extra.items():
        ET.SubElement(root, tag).text = text
    ET.SubElement(root, "EC").text = err.ec
    ET.SubElement(root, "RecommendDoc").text = f"https://api.aliyun.com/troubleshoot?q={err.ec}"
    return xml_document(root)


def head_error_header(body: bytes) -> str:
    """The ``x-oss-err`` value: HEAD errors have no body, so OSS sends the XML base64-encoded."""
    return base64.b64encode(body).decode()
