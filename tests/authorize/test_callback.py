"""The loopback callback listener: state checks, errors, dropped connections, the deadline, and
that it listens on 127.0.0.1 only."""

from __future__ import annotations

import socket

import anyio
import pytest

from probe.authorize.callback import Callback, listen_for_callback, parse_callback

STATE = "s-123_abc"


def test_parse_callback() -> None:
    ok = parse_callback(f"/callback?code=c1&state={STATE}", STATE)
    assert ok.state_ok and ok.code == "c1" and ok.error is None
    assert "c1" not in repr(ok)
    wrong = parse_callback("/callback?code=c1&state=other", STATE)
    assert not wrong.state_ok
    missing = parse_callback("/callback?code=c1", STATE)
    assert not missing.state_ok and "state" not in missing.params
    denied = parse_callback(
        f"/callback?error=access_denied&error_description=Member+is+not+eligible&state={STATE}",
        STATE,
    )
    assert denied.state_ok and denied.code is None
    assert denied.error == "access_denied"
    assert denied.error_description == "Member is not eligible"


async def _get(port: int, target: str, host: str = "127.0.0.1") -> bytes:
    stream = await anyio.connect_tcp(host, port)
    async with stream:
        await stream.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return data


async def _receive(target: str) -> tuple[Callback | None, bytes]:
    async with listen_for_callback(0, STATE) as listener:
        answer = await _get(listener.port, target)
        callback = await listener.wait(5)
    return callback, answer


@pytest.mark.anyio
async def test_a_good_callback_is_received_and_answered_with_a_page() -> None:
    callback, answer = await _receive(f"/callback?code=secret-code&state={STATE}")
    assert callback is not None and callback.state_ok and callback.code == "secret-code"
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"Authorization received" in answer
    assert b"secret-code" not in answer and STATE.encode() not in answer


@pytest.mark.anyio
async def test_wrong_or_missing_state_is_refused() -> None:
    for target in ("/callback?code=x&state=nope", "/callback?code=x"):
        callback, answer = await _receive(target)
        assert callback is not None and not callback.state_ok
        assert answer.startswith(b"HTTP/1.1 400 ")


@pytest.mark.anyio
async def test_an_error_callback_is_recorded() -> None:
    callback, answer = await _receive(f"/callback?error=access_denied&state={STATE}")
    assert callback is not None and callback.error == "access_denied" and callback.code is None
    assert b"Authorization refused" in answer


@pytest.mark.anyio
async def test_other_paths_and_later_callbacks_do_not_count() -> None:
    async with listen_for_callback(0, STATE) as listener:
        assert (await _get(listener.port, "/favicon.ico")).startswith(b"HTTP/1.1 404 ")
        assert listener.callback is None
        await _get(listener.port, f"/callback?code=first&state={STATE}")
        second = await _get(listener.port, f"/callback?code=second&state={STATE}")
        assert second.startswith(b"HTTP/1.1 409 ")
        callback = await listener.wait(1)
    assert callback is not None and callback.code == "first"


@pytest.mark.anyio
async def test_dropped_connections_are_tolerated() -> None:
    async with listen_for_callback(0, STATE) as listener:
        # Connects and goes away without a byte.
        stream = await anyio.connect_tcp("127.0.0.1", listener.port)
        await stream.aclose()
        # Sends half a request line and resets the connection.
        raw = socket.create_connection(("127.0.0.1", listener.port))
        raw.sendall(b"GET /callb")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()
        # Sends the whole callback and resets before reading the answer: still received.
        raw = socket.create_connection(("127.0.0.1", listener.port))
        raw.sendall(f"GET /callback?code=c&state={STATE} HTTP/1.1\r\n\r\n".encode())
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()
        callback = await listener.wait(5)
        assert callback is not None and callback.code == "c"
        # The listener still serves after all that.
        assert (await _get(listener.port, "/other")).startswith(b"HTTP/1.1 404 ")


@pytest.mark.anyio
async def test_the_deadline_ends_the_wait_without_a_callback() -> None:
    async with listen_for_callback(0, STATE) as listener:
        with anyio.fail_after(3):
            assert await listener.wait(0.2) is None


@pytest.mark.anyio
async def test_listens_on_127_0_0_1_only() -> None:
    async with listen_for_callback(0, STATE) as listener:
        port = listener.port
        # Another loopback address of this machine (Linux routes all of 127/8 to lo).
        with pytest.raises(OSError), socket.create_connection(("127.0.0.2", port), timeout=2):
            pass
        # Nor any other address of this host (its LAN address, when it has one).
        try:
            lan = socket.gethostbyname(socket.gethostname())
        except OSError:
            lan = "127.0.1.1"
        if not lan.startswith("127.0.0.1"):
            with pytest.raises(OSError), socket.create_connection((lan, port), timeout=2):
                pass
        # Nor IPv6 loopback.
        if socket.has_ipv6:
            with (
                pytest.raises(OSError),
                socket.create_connection(("::1", port), timeout=2),
            ):
                pass
        assert (await _get(port, "/x")).startswith(b"HTTP/1.1 404 ")


@pytest.mark.anyio
async def test_a_taken_port_is_an_os_error() -> None:
    async with listen_for_callback(0, STATE) as listener:
        with pytest.raises(OSError):
            async with listen_for_callback(listener.port, STATE):
                pass
