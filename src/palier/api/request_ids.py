"""``X-Request-ID`` on every answer, to match what a client was told with the server's log.

The id a client or its proxy sent is kept when it is a plain token (letters, digits and ``._:-``, at most
200 characters), so one id follows a request from the load balancer to the log; anything else is replaced
by one of ours, never written to a log as sent. A 500 or a 503 repeats it in its problem+json body
(``request_id``) and in the one line the server logs for it (:mod:`palier.api.problems`).
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_PLAIN = re.compile(r"[A-Za-z0-9._:-]{1,200}")


def request_id(request: Request) -> str:
    """This request's id (one of ours for a request that did not pass through :class:`RequestIds`)."""
    state = request.scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = uuid.uuid4().hex
    return str(state["request_id"])


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(HEADER, "")
        rid = given if _PLAIN.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        header = (HEADER.lower().encode(), rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != header[0]]
                message["headers"] = [*headers, header]
            await send(message)

        await self.app(scope, receive, send_with_id)
