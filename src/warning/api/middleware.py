"""Request ids, Prometheus metrics, the body size limit and identity masking in logs for every HTTP request."""

from __future__ import annotations

import logging
import re
import time
import unicodedata
import urllib.parse
import uuid

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warning.feeds.identity import mask_identities_loosely, mask_likely_identities_in_text

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
# A client's request id is kept only if it is short and plain, so logs stay parseable.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UNMATCHED_ROUTE = "unmatched"


class RequestMetrics:
    """Request counters and latency histograms, in a registry of their own per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "povwarn_http_requests",
            "HTTP requests by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "povwarn_http_request_duration_seconds",
            "HTTP request latency in seconds by method and route template",
            ["method", "route"],
            registry=self.registry,
        )


# uvicorn's access log writes each request line, query string included, and any
# log line can quote a path or a header, so the handlers of these loggers mask them.
SERVER_LOGGERS = ("", "uvicorn", "uvicorn.access", "uvicorn.error")


class MaskIdentityNumbers(logging.Filter):
    """Mask resident identity numbers and escape control characters in a log record's arguments.

    A client controls paths, queries and headers, so a record that quotes
    them can carry an identity number (also percent-encoded) or a terminal
    escape sequence.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_likely_identities_in_text(record.msg)
        # The arguments are masked one by one, because uvicorn's access formatter unpacks them as a tuple.
        if isinstance(record.args, tuple):
            record.args = tuple(_inert(argument) for argument in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _inert(argument) for key, argument in record.args.items()}
        return True


def _inert(argument: object) -> object:
    if not isinstance(argument, str):
        return argument
    text = mask_likely_identities_in_text(argument)
    # A number can be percent-encoded digit by digit, so such a text is logged decoded and masked.
    if "%" in argument or "+" in argument:
        decoded = urllib.parse.unquote_plus(argument)
        masked = mask_likely_identities_in_text(decoded)
        if masked != decoded:
            text = masked
    escaped = (
        f"\\x{ord(character):02x}" if unicodedata.category(character) == "Cc" else character for character in text
    )
    return "".join(escaped)


def mask_identity_numbers_in_server_logs() -> None:
    """Add ``MaskIdentityNumbers`` to every handler of the root and uvicorn loggers, once.

    uvicorn sets up its handlers before the app starts, so this runs at start-up.
    """
    for name in SERVER_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(existing, MaskIdentityNumbers) for existing in handler.filters):
                handler.addFilter(MaskIdentityNumbers())


def request_id_of(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", "-"))


class RequestContextMiddleware:
    """Give each request an id (the client's ``X-Request-ID`` or a new one) and record its metrics.

    Metrics are labelled by route template (``/v1/scores``), not by raw path,
    so that label values stay few.
    """

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        offered = headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        # A request id that carries an identity number would be logged and sent back, so it is replaced.
        plain = VALID_REQUEST_ID.match(offered) and mask_identities_loosely(offered) == offered
        request_id = offered if plain else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                header = (REQUEST_ID_HEADER.encode(), request_id.encode())
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", UNMATCHED_ROUTE)
            method = scope.get("method", "-")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)


class BodySizeLimitMiddleware:
    """Reject a request body over ``max_bytes`` with HTTP 413 before it is parsed.

    A body with a Content-Length header is rejected before it is read. A body
    without one (chunked transfer) is counted as it streams, and reading stops
    at the first chunk past the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self, scope: Scope, size: str) -> str:
        logger.warning(
            "Request %s %s %s rejected with 413: body of %s over the limit of %d bytes",
            request_id_of(scope),
            scope.get("method", "-"),
            scope.get("path", "-"),
            size,
            self.max_bytes,
        )
        return (
            f"request body of {size} is over the limit of {self.max_bytes} bytes (POVWARN_MAX_REQUEST_BYTES); "
            "send fewer households per request"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            detail = self._detail(scope, f"{declared} bytes")
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException from reading the body, so the
                    # app's exception handler sends it.
                    raise HTTPException(status_code=413, detail=self._detail(scope, f"at least {received} bytes"))
            return message

        await self.app(scope, receive_counted, send)
