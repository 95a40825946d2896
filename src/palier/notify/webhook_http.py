"""Sending one signed request to a webhook: the signature, a deadline on the whole exchange, and (on a
server that sends only to the public internet) a check of the address actually connected to."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import socket
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import httpx

from palier.clock import Clock

TIMEOUT = 10.0  # seconds to wait for the receiver's answer
SIGNATURE_HEADER = "Palier-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Palier-Signature`` header value of ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class Deadline:
    """Cuts a request off ``seconds`` after it began. httpx's timeouts are per read: a receiver that dribbles
    its answer a byte every few seconds never trips them, and would hold the sender (and every program's
    deliveries behind it) past the batch's lease, when another worker sends the same events again."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True  # never keeps a stopping worker waiting

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: the connection's socket, once open (and again once wrapped in TLS)."""
        if name.endswith(("connect_tcp.complete", "start_tls.complete")):
            with self._lock:
                self._socket = info["return_value"].get_extra_info("socket")
                if self.expired:
                    self._shut()

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):  # already closed: the request is over
                self._socket.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()


class PrivateAddress(Exception):
    """The receiver's address is not on the public internet, and this server sends only there."""


def is_public(address: str) -> bool:
    """An IP address on the public internet: not loopback, private, link-local (the cloud's metadata
    service), shared (carrier-grade NAT), multicast or reserved; an IPv4 address written as IPv6 too."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) names no other address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def proxied(url: str) -> bool:
    """Whether the request goes through a proxy named by the environment (``HTTPS_PROXY``…, minus
    ``NO_PROXY``), as the HTTP client honours them: the proxy, not Palier, then decides where it may go."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # a malformed address: the request fails on its own
        return False
    return parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)


def refuse_private_peer(name: str, info: dict[str, Any]) -> None:
    """httpcore's trace hook: refuse the connection, before a byte is sent, when the address the receiver's
    name led to is not public. The address connected to is checked, not the name: a name that resolves to a
    public address when saved and to a private one at delivery (DNS rebinding) is caught too."""
    if name.endswith("connect_tcp.complete"):
        sock = info["return_value"].get_extra_info("socket")
        peer = sock.getpeername()[0]
        if not is_public(peer):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            raise PrivateAddress(
                f"{peer} is not on the public internet, and this server sends only there "
                "(PALIER_WEBHOOK_NETWORKS=public)"
            )


def client() -> httpx.Client:
    """No connection is kept between requests: each one's socket is opened under its own deadline."""
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0))


def post(
    client: httpx.Client, url: str, secret: str, body: bytes, clock: Clock, *, public_only: bool = False
) -> tuple[int | None, str | None]:
    """Send one signed request: the receiver's status (None if it never answered within ``TIMEOUT``, all
    told) and what went wrong, if anything (None: a 2xx). The answer's body is not read. ``public_only``:
    refuse to send to an address that is not on the public internet (unless a proxy carries the request)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Palier-Webhooks/1",
        SIGNATURE_HEADER: sign(secret, int(clock.now().timestamp()), body),
    }
    deadline = Deadline(TIMEOUT)
    check_peer = public_only and not proxied(url)

    def trace(name: str, info: dict[str, Any]) -> None:
        deadline.trace(name, info)
        if check_peer:
            refuse_private_peer(name, info)

    try:
        with (
            deadline,
            client.stream("POST", url, content=body, headers=headers, extensions={"trace": trace}) as answer,
        ):
            status = answer.status_code
    except PrivateAddress as exc:
        return None, f"PrivateAddress: {exc}"
    except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:  # an address saved by an older version, too
        if deadline.expired:
            return None, f"Timeout: no complete answer within {TIMEOUT:g} s"
        return None, f"{type(exc).__name__}: {exc}"[:200]
    return status, None if 200 <= status < 300 else f"HTTP {status}"
