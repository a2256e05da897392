"""`tests.support.faulty_store.FaultyStore`: it passes calls through, records them, and injects
exactly the failures it is told to (and reports that they struck)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ossfs.core.crc64 import crc64
from ossfs.core.errors import AccessDeniedError, NotFoundError, RemoteIOError
from ossfs.core.object_store import Piece
from tests.support.fakes import FakeStore
from tests.support.faulty_store import FaultyStore, StallNeverReleasedError

WAIT_S = 10.0
DATA = bytes(range(100))


def make() -> tuple[FakeStore, FaultyStore]:
    inner = FakeStore()
    inner.put("a", DATA)
    inner.put("b", b"bee")
    inner.put_symlink("link", "a")
    return inner, FaultyStore(inner)


def pieces_of(store: FaultyStore, key: str = "a", piece_bytes: int = 30) -> list[bytes]:
    got: list[Piece] = []
    store.read_range(key, 0, 100, etag=None, piece_bytes=piece_bytes, on_piece=got.append)
    return [bytes(p) for p in got]


def chunks_of(store: FaultyStore, key: str = "a", chunk_bytes: int = 30) -> list[bytes]:
    _, chunks = store.stream(key, chunk_bytes=chunk_bytes)
    return list(chunks)


def test_faulty_store_without_faults_passes_everything_through_and_records_it() -> None:
    inner, store = make()
    store.probe()
    assert store.head("a") == inner.head("a")
    page = store.list_page("", token=None)
    assert [m.key for m in page.objects] == ["a", "b", "link"]
    assert store.get_range("a", 10, 20) == DATA[10:20]
    assert pieces_of(store) == [DATA[0:30], DATA[30:60], DATA[60:90], DATA[90:100]]
    assert store.announced_crc64("a", inner.head("a").etag) == crc64(DATA)
    assert store.symlink_target("link") == "a"
    meta, chunks = store.stream("a", start=40, chunk_bytes=50)
    assert meta.key == "a" and b"".join(chunks) == DATA[40:]
    with pytest.raises(NotFoundError):  # the wrapped store's own errors pass through
        store.head("missing")
    assert store.calls == [
        ("probe",),
        ("head", "a"),
        ("list_page", "", None),
        ("get_range", "a", 10, 20),
        ("read_range", "a", 0, 100),
        ("symlink_target", "link"),
        ("stream", "a", 40),
        ("head", "missing"),
    ]
    assert store.count("head") == 2
    store.reset_calls()
    assert store.calls == []


def test_faulty_store_fails_exactly_the_kth_matching_call() -> None:
    inner, store = make()
    error = RemoteIOError("boom")
    fault = store.fail("head", error, call=2, key="a")
    store.head("b")  # another key: not counted
    store.head("a")
    inner.reset_calls()
    with pytest.raises(RemoteIOError) as raised:
        store.head("a")
    assert raised.value is error
    assert inner.calls == []  # the failed call never reached the wrapped store
    store.head("a")  # only the 2nd
    assert fault.fired == 1
    assert store.calls == [("head", "b"), ("head", "a"), ("head", "a"), ("head", "a")]


def test_faulty_store_times_and_match_select_calls() -> None:
    _, store = make()
    fault = store.fail(
        "get_range", AccessDeniedError("no"), times=2, match=lambda call: call[2] == 50
    )
    assert store.get_range("a", 0, 10) == DATA[:10]
    for _ in range(2):
        with pytest.raises(AccessDeniedError):
            store.get_range("a", 50, 60)
    assert store.get_range("a", 50, 60) == DATA[50:60]
    always = store.fail("probe", RemoteIOError("down"), call=2, times=None)
    store.probe()
    for _ in range(3):
        with pytest.raises(RemoteIOError):
            store.probe()
    assert (fault.fired, always.fired) == (2, 3)


def test_faulty_store_cut_hands_over_the_kept_bytes_then_raises_or_ends_quietly() -> None:
    _, store = make()
    reset = RemoteIOError("connection reset")
    loud = store.cut("read_range", piece=2, keep=5, error=reset)
    got: list[bytes] = []
    with pytest.raises(RemoteIOError) as raised:
        store.read_range(
            "a", 0, 100, etag=None, piece_bytes=30, on_piece=lambda p: got.append(bytes(p))
        )
    assert raised.value is reset
    assert got == [DATA[0:30], DATA[30:35]]
    quiet = store.cut("read_range", piece=3, call=2)  # the 2nd read_range from now on
    assert pieces_of(store) == [DATA[0:30], DATA[30:60], DATA[60:90], DATA[90:100]]
    assert pieces_of(store) == [DATA[0:30], DATA[30:60]]  # a short body, and no error
    assert (loud.fired, quiet.fired) == (1, 1)


def test_faulty_store_corrupts_one_byte_of_one_piece() -> None:
    _, store = make()
    fault = store.corrupt("read_range", piece=2, offset=7)
    got = pieces_of(store)
    assert [len(p) for p in got] == [30, 30, 30, 10]
    assert got[0] == DATA[0:30] and got[2:] == [DATA[60:90], DATA[90:100]]
    differs = [i for i in range(30) if got[1][i] != DATA[30 + i]]
    assert differs == [7] and got[1][7] == DATA[37] ^ 0xFF
    assert pieces_of(store) == [DATA[0:30], DATA[30:60], DATA[60:90], DATA[90:100]]
    assert fault.fired == 1


def test_faulty_store_a_body_fault_past_the_end_of_a_body_does_not_strike() -> None:
    _, store = make()
    fault = store.corrupt("read_range", piece=9)
    assert b"".join(pieces_of(store)) == DATA
    assert fault.fired == 0


def test_faulty_store_stream_chunks_can_be_cut_or_corrupted() -> None:
    _, store = make()
    store.cut("stream", piece=3, keep=1, error=RemoteIOError("reset"), key="a")
    _, chunks = store.stream("a", chunk_bytes=30)
    assert next(chunks) == DATA[0:30] and next(chunks) == DATA[30:60]
    assert next(chunks) == DATA[60:61]
    with pytest.raises(RemoteIOError):
        next(chunks)
    store.corrupt("stream", piece=1, offset=0)
    first, *rest = chunks_of(store)
    assert first == bytes([DATA[0] ^ 0xFF]) + DATA[1:30] and b"".join(rest) == DATA[30:]
    store.cut("stream", piece=2)
    assert chunks_of(store) == [DATA[0:30]]
    assert chunks_of(store) == [DATA[0:30], DATA[30:60], DATA[60:90], DATA[90:100]]


def test_faulty_store_stall_holds_a_call_until_released_and_others_go_on() -> None:
    _, store = make()
    stall = store.stall("get_range", key="a")
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(store.get_range, "a", 0, 10)
        stall.wait_reached(WAIT_S)
        assert store.get_range("b", 0, 3) == b"bee"  # other calls are not held
        assert store.get_range("a", 0, 3) == DATA[:3]  # nor the next call of the same key
        assert not held.done()
        stall.release()
        assert held.result(WAIT_S) == DATA[:10]
    assert stall.fired == 1 and stall.released


def test_faulty_store_stall_at_a_piece_hands_over_the_pieces_before_it() -> None:
    _, store = make()
    stall = store.stall("read_range", piece=3)
    got: list[bytes] = []
    two_in = threading.Event()

    def take(piece: Piece) -> None:
        got.append(bytes(piece))
        if len(got) == 2:
            two_in.set()

    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(store.read_range, "a", 0, 100, etag=None, piece_bytes=30, on_piece=take)
        stall.wait_reached(WAIT_S)
        assert two_in.is_set() and got == [DATA[0:30], DATA[30:60]]
        stall.release()
        held.result(WAIT_S)
    assert b"".join(got) == DATA


def test_faulty_store_a_stall_never_released_fails_its_call_instead_of_hanging() -> None:
    inner = FakeStore()
    inner.put("a", DATA)
    store = FaultyStore(inner, stall_timeout_s=0.01)
    stall = store.stall("head")
    with pytest.raises(StallNeverReleasedError):
        store.head("a")
    assert stall.reached.is_set()


def test_faulty_store_rejects_faults_it_cannot_place() -> None:
    _, store = make()
    with pytest.raises(ValueError):
        store.fail("delete", RemoteIOError("x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.fail("head", RemoteIOError("x"), call=0)
    with pytest.raises(ValueError):
        store.corrupt("read_range", piece=0)
    with pytest.raises(ValueError):
        store.stall("head", piece=1)  # a HEAD has no body
    with pytest.raises(ValueError):
        store.cut("read_range", piece=1, keep=-1)
