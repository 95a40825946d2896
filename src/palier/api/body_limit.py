"""A request body larger than :data:`MAX_BODY_BYTES` is refused (``413 body_too_large``) as it arrives.

Without a bound, one request with a body of gigabytes (sent by anyone: the body is read before the API key is
checked) is held whole in the server's memory. The largest real bodies, a rule set or a purchase of 500 lines,
are a few hundred kilobytes. A declared ``Content-Length`` above the bound is refused before a byte is read; a
body sent in chunks is counted as it comes and refused once it passes the bound.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 4 * 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised while the body is read: the API answers it as problem+json, a page as a page."""

    def __init__(self) -> None:
        super().__init__(413, f"A request body is at most {MAX_BODY_BYTES:,} bytes; nothing was read further.")


class LimitBodySize:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        too_large = declared.isdigit() and int(declared) > MAX_BODY_BYTES
        received = 0

        async def receive_at_most() -> Message:
            nonlocal received
            if too_large:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise BodyTooLarge
            return message

        await self.app(scope, receive_at_most, send)
