"""Hypothesis fuzzing of `ossfs.net.http_wire`'s answer parsing: answer heads and chunked bodies.

Goes with that module: the hand-written HTTP engine is to be replaced by a library, and these
tests with it. Any bytes a server sends either parse into exactly what they say or raise one
of ``http.client``'s exceptions; nothing else escapes, nothing hangs, and a parsed answer
leaves the stream right after its own bytes.
"""

from __future__ import annotations

import http.client
import io
import re
import socket
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.net.http_wire import SocketReader, _ChunkedBody, read_answer_head

TOKEN = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=20)
# Field values: visible ASCII and obs-text, with spaces and tabs inside (not at the ends).
_VCHAR = "".join(chr(c) for c in range(0x21, 0x7F)) + "".join(chr(c) for c in range(0x80, 0x100))
FIELD_VALUE = st.builds(
    lambda first, rest: (first + rest).rstrip(" \t") if rest else first,
    st.text(_VCHAR, min_size=1, max_size=1),
    st.text(_VCHAR + " \t", max_size=40),
)
EOL = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def answer_heads(draw: st.DrawFn) -> tuple[bytes, int, list[tuple[str, str]], str]:
    """A well-formed answer head: its bytes, status, headers and HTTP version."""
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    status = draw(st.integers(100, 999))
    reason = draw(st.text(string.ascii_letters + " ", max_size=20))
    headers = draw(st.lists(st.tuples(TOKEN, FIELD_VALUE), max_size=30))
    eol = draw(EOL)
    spaces = draw(st.sampled_from(["", " ", "  ", "\t"]))
    lines = [f"{version} {status} {reason}".encode()]
    lines += [f"{name}:{spaces}{value}{spaces}".encode("latin-1") for name, value in headers]
    return eol.join([*lines, b"", b""]), status, headers, version


@given(answer_heads(), st.binary(max_size=200))
def test_read_answer_head_reads_what_a_well_formed_head_says(
    head: tuple[bytes, int, list[tuple[str, str]], str], body: bytes
) -> None:
    raw, status, headers, version = head
    stream = io.BytesIO(raw + body)
    got_status, keep_alive, got_headers = read_answer_head(stream)
    expected: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        expected[key] = f"{expected[key]}, {value}" if key in expected else value
    assert (got_status, dict(got_headers)) == (status, expected)
    connection = expected.get("connection", "").lower()
    assert keep_alive == (
        "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    )
    assert stream.read() == body  # the head was read to its end, and not a byte further


def _mutations(raw: bytes) -> st.SearchStrategy[bytes]:
    """``raw`` with a few bytes replaced, inserted or deleted."""
    edit = st.tuples(
        st.sampled_from(["replace", "insert", "delete"]),
        st.integers(0, max(len(raw) - 1, 0)),
        st.binary(min_size=1, max_size=8)
        | st.sampled_from([b"\r", b"\n", b"\r\n", b":", b" ", b"\x00", b"-1", b"HTTP/1.1 "]),
    )

    def apply(edits: list[tuple[str, int, bytes]]) -> bytes:
        data = bytearray(raw)
        for kind, where, chunk in edits:
            at = min(where, len(data))
            if kind == "replace":
                data[at : at + len(chunk)] = chunk
            elif kind == "insert":
                data[at:at] = chunk
            else:
                del data[at : at + len(chunk)]
        return bytes(data)

    return st.lists(edit, min_size=1, max_size=4).map(apply)


def _check_refused_or_consistent(raw: bytes) -> None:
    stream = io.BytesIO(raw)
    try:
        status, _, headers = read_answer_head(stream)
    except http.client.HTTPException:
        return
    assert status >= 0
    head = raw[: stream.tell()]
    assert head.endswith((b"\n\n", b"\n\r\n"))  # ended by the blank line
    for name, value in headers.items():
        assert name and name == name.lower() and name == name.strip()
        assert ":" not in name and "\n" not in name and "\n" not in value
        assert value == value.strip(" \t\r\n")


@given(answer_heads().flatmap(lambda head: _mutations(head[0])))
def test_read_answer_head_refuses_or_reads_a_damaged_head(raw: bytes) -> None:
    _check_refused_or_consistent(raw)


@given(st.binary(max_size=400))
def test_read_answer_head_refuses_or_reads_any_bytes(raw: bytes) -> None:
    _check_refused_or_consistent(raw)


# -- chunked bodies ---------------------------------------------------------------------------


def _served(data: bytes) -> tuple[SocketReader, socket.socket, socket.socket]:
    """A reader of ``data``, after which the server hung up (and the two sockets, to close)."""
    server, client = socket.socketpair()
    client.settimeout(5)  # a parser waiting for bytes that never come fails, not hangs
    server.sendall(data)
    server.shutdown(socket.SHUT_WR)
    return SocketReader(client, waitall=False), server, client


def _read_body(body: _ChunkedBody, buffer_size: int) -> bytes:
    parts = []
    buffer = bytearray(buffer_size)
    while got := body.readinto(memoryview(buffer)):
        parts.append(bytes(buffer[:got]))
    return b"".join(parts)


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A chunked encoding of a body (random chunk sizes, size spellings, extensions and
    trailers) and that body."""
    body = draw(st.binary(max_size=3000))
    cuts = sorted(draw(st.sets(st.integers(1, max(len(body) - 1, 1)), max_size=8)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    out = []
    for piece in [p for p in pieces if p]:
        size = draw(st.sampled_from(["{:x}", "{:X}", "{:04x}"])).format(len(piece))
        extension = draw(st.sampled_from(["", ";name=value", ' ; a="b"']))
        out.append(f"{size}{extension}\r\n".encode() + piece + b"\r\n")
    out.append(b"0\r\n")
    trailers = draw(st.lists(st.tuples(TOKEN, st.text(string.ascii_letters)), max_size=3))
    out += [f"{name}: {value}\r\n".encode() for name, value in trailers]
    out.append(b"\r\n")
    return b"".join(out), body


@given(chunked_bodies(), st.integers(1, 5000))
def test_chunked_body_is_exactly_what_its_chunks_carry(
    encoded: tuple[bytes, bytes], buffer_size: int
) -> None:
    wire, body = encoded
    reader, server, client = _served(wire + b"NEXT")
    with server, client:
        assert _read_body(_ChunkedBody(reader), buffer_size) == body
        assert reader.readline() == b"NEXT"  # the body ended exactly at its last CRLF


@given(chunked_bodies().flatmap(lambda encoded: _mutations(encoded[0])))
def test_chunked_body_refuses_or_reads_damaged_chunks(raw: bytes) -> None:
    reader, server, client = _served(raw)
    with server, client:
        try:
            body = _read_body(_ChunkedBody(reader), 4096)
        except http.client.HTTPException:
            return
        assert len(body) <= len(raw)


_HEX = re.compile(r"[0-9A-Fa-f]+")
_LATIN1_LINE = "".join(chr(c) for c in range(0x100) if chr(c) not in "\r\n;")


@given(
    st.sampled_from(["-1", "-0", "+5", "0x10", "1_0", "", " ", "5 5", "\x00"])
    | st.text(_LATIN1_LINE, max_size=12).filter(lambda t: not _HEX.fullmatch(t.strip(" \t")))
)
def test_chunked_body_refuses_a_chunk_size_that_is_not_hexadecimal(size: str) -> None:
    """Python's ``int(text, 16)`` also reads signs, ``0x`` and underscores: a chunk of size
    "-1" would make the body's framing up."""
    wire = size.encode("latin-1") + b"\r\n" + b"x" * 40 + b"\r\n0\r\n\r\n"
    reader, server, client = _served(wire)
    with server, client, pytest.raises(http.client.HTTPException):
        _read_body(_ChunkedBody(reader), 4096)
