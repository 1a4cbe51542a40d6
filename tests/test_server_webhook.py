"""The webhook receiver proven against a third-party HTTP client (``httpx``)."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest
from servers.webhook import WebhookServer

# The fixtures (obs_server, hue_bridge, webhook_server) live beside the servers.

TIMEOUT = 3.0


@pytest.fixture
def client() -> httpx.Client:
    with httpx.Client(timeout=TIMEOUT) as client:
        yield client


def test_records_method_path_headers_body(
    webhook_server: WebhookServer, client: httpx.Client
) -> None:
    response = client.post(
        webhook_server.url("/hooks/scene?source=pad"),
        json={"scene": "Live", "velocity": 100},
        headers={"X-Wasmdeck-Signature": "sha256=abc"},
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert response.headers["content-type"] == "application/json"
    [request] = webhook_server.requests
    assert request.method == "POST"
    assert request.path == "/hooks/scene"
    assert request.query == {"source": ["pad"]}
    assert request.target == "/hooks/scene?source=pad"
    assert request.headers["x-wasmdeck-signature"] == "sha256=abc"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"scene": "Live", "velocity": 100}


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_any_method(webhook_server: WebhookServer, client: httpx.Client, method: str) -> None:
    assert client.request(method, webhook_server.url(), content=b"x" * 3).status_code == 200
    assert [(r.method, r.body) for r in webhook_server.requests] == [(method, b"xxx")]


def test_head_has_no_body(webhook_server: WebhookServer, client: httpx.Client) -> None:
    response = client.head(webhook_server.url())
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-length"] == str(len(b'{"ok":true}'))


def test_configured_error_replies(webhook_server: WebhookServer, client: httpx.Client) -> None:
    webhook_server.reply(503, {"error": "maintenance"}, headers={"Retry-After": "1"})
    webhook_server.reply_for("/teapot", 418, b"short and stout")
    response = client.post(webhook_server.url("/hook"), json={})
    assert (response.status_code, response.json()) == (503, {"error": "maintenance"})
    assert response.headers["retry-after"] == "1"
    response = client.get(webhook_server.url("/teapot"))
    assert (response.status_code, response.content) == (418, b"short and stout")
    webhook_server.reply()
    assert client.post(webhook_server.url("/hook")).status_code == 200
    with pytest.raises(ValueError):
        webhook_server.reply(99)


@pytest.mark.parametrize(
    ("code", "method_after"),
    [(301, "GET"), (302, "GET"), (303, "GET"), (307, "POST"), (308, "POST")],
)
def test_redirects_followed(
    webhook_server: WebhookServer,
    client: httpx.Client,
    code: int,
    method_after: str,
) -> None:
    target = webhook_server.url("/landed")
    response = client.post(
        webhook_server.redirect_url(code, target), content=b"payload", follow_redirects=True
    )
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [code]
    first, second = webhook_server.requests
    assert (first.method, first.path) == ("POST", f"/redirect/{code}")
    # What the client does next is the client's rule (RFC 9110): 307/308 keep
    # the method and body, the others turn a POST into a GET.
    assert (second.method, second.path) == (method_after, "/landed")
    assert second.body == (b"payload" if method_after == "POST" else b"")


def test_redirect_not_followed(webhook_server: WebhookServer, client: httpx.Client) -> None:
    elsewhere = "http://127.0.0.1:9/private?x=1&y=2"
    response = client.get(webhook_server.redirect_url(302, elsewhere))
    assert response.status_code == 302
    assert response.headers["location"] == elsewhere
    assert len(webhook_server.requests) == 1


def test_bad_redirect_requests(webhook_server: WebhookServer, client: httpx.Client) -> None:
    assert client.get(webhook_server.url("/redirect/200?location=/x")).status_code == 400
    assert client.get(webhook_server.url("/redirect/302")).status_code == 400
    assert client.get(webhook_server.url("/redirect/abc?location=/x")).status_code == 400
    with pytest.raises(ValueError):
        webhook_server.redirect_url(200, "/x")


def test_chunked_body(webhook_server: WebhookServer, client: httpx.Client) -> None:
    def parts():  # a generator body makes httpx send Transfer-Encoding: chunked
        yield b'{"a":'
        yield b"1}"

    assert client.post(webhook_server.url(), content=parts()).status_code == 200
    [request] = webhook_server.requests
    assert request.headers["transfer-encoding"] == "chunked"
    assert request.json() == {"a": 1}


def test_wait_for_requests(webhook_server: WebhookServer, client: httpx.Client) -> None:
    with pytest.raises(TimeoutError):
        webhook_server.wait_for_requests(1, timeout=0.05)
    sender = threading.Thread(target=client.post, args=(webhook_server.url(),), kwargs={"json": {}})
    sender.start()
    assert len(webhook_server.wait_for_requests(1)) == 1
    sender.join(TIMEOUT)


def test_malformed_requests(webhook_server: WebhookServer) -> None:
    address = (webhook_server.host, webhook_server.port)
    cases = [
        b"POST /hook HTTP/1.1\r\nHost: h\r\nContent-Length: nope\r\n\r\n",
        b"POST /hook HTTP/1.1\r\nHost: h\r\nContent-Length: 10485760\r\n\r\n",
        b"POST /hook HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n",
    ]
    statuses = []
    for request in cases:
        with socket.create_connection(address, timeout=TIMEOUT) as sock:
            sock.sendall(request)
            statuses.append(sock.recv(100).split(b"\r\n")[0])
    assert statuses == [
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 413 Request Entity Too Large",
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 501 Unsupported method ('BREW')",
    ]
    assert webhook_server.requests == []  # refused before they reached the app
    assert httpx.get(webhook_server.url(), timeout=TIMEOUT).status_code == 200


def test_stops_cleanly() -> None:
    server = WebhookServer().start()
    with httpx.Client(timeout=TIMEOUT) as client:
        client.get(server.url())  # the client keeps the connection alive
        server.stop()
        with pytest.raises(httpx.TransportError):
            client.get(server.url())
