"""The server's listening socket says it is TCP, so asyncio turns Nagle off on every accepted
connection: with proto 0 each answer (headers, then body) waited ~40 ms for a delayed ACK."""

from __future__ import annotations

import socket

from mlopsctl.serving.server import bind


def test_the_listening_socket_is_tcp_with_nagle_off() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        client = socket.create_connection(sock.getsockname())
        conn, _ = sock.accept()
        try:
            assert conn.proto == socket.IPPROTO_TCP  # what asyncio checks before TCP_NODELAY
        finally:
            conn.close()
            client.close()
    finally:
        sock.close()
