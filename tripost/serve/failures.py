"""What a failed request answers, in each provider's error shape.

serve-teacher's live routes (server.py) and its batch items (batches.py)
fail the same way: an `HTTPFailure` with a status and the provider's error
type, an injected fault, or an upstream's error passed on with its status.
"""

from __future__ import annotations

import math
from typing import Any

from tripost.teachers.retry import ChatError

QUOTA = "quota"  # the --fail-codes code for a 429 saying the account is out of quota

# A 200 answer that parses as JSON but not as the API promises (a content
# that is a number; a text block whose text is null), per API flavour: one
# of the live `malformed` bodies, and the malformed batch item.
WRONG_SHAPE_ANSWERS: dict[str, dict[str, Any]] = {
    "openai": {
        "id": "chatcmpl-malformed", "object": "chat.completion", "created": 0, "model": "x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": 5}, "finish_reason": "stop"}],
    },
    "anthropic": {
        "id": "msg_malformed", "type": "message", "role": "assistant", "model": "x",
        "content": [{"type": "text", "text": None}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    },
}


class HTTPFailure(Exception):
    """An error answer: status, message, the provider's error type (`kind`),
    headers, and OpenAI's `param` and `code` where it names them."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", headers: dict[str, str] | None = None,
        param: str | None = None, code: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.headers = headers or {}
        self.param = param
        self.code = code


# Error types by status, as the providers name them (the SDKs map statuses to
# exception classes themselves; the type tells a reader what happened).
_KIND_BY_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error",
}


def injected_failure(code: int | str, retry_after: float | None = None) -> HTTPFailure:
    """The error an injected ("fail", code) fault answers; a 429 carries
    Retry-After when `retry_after` is given."""
    if code == QUOTA:
        return HTTPFailure(429, "You exceeded your current quota (injected by serve-teacher)", "insufficient_quota")
    status = int(code)
    headers: dict[str, str] = {}
    if status == 429 and retry_after is not None:
        headers = {"retry-after-ms": str(int(retry_after * 1000)), "Retry-After": str(max(1, math.ceil(retry_after)))}
    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    return HTTPFailure(status, f"injected failure {status}", kind, headers)


def error_payload(flavour: str, message: str, kind: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """An error body as the provider shapes it ("openai" or "anthropic")."""
    if flavour == "anthropic":
        return {"type": "error", "error": {"type": "billing_error" if kind == "insufficient_quota" else kind, "message": message}}
    code = code or (kind if kind in ("insufficient_quota",) else None)
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def upstream_failure(e: ChatError) -> HTTPFailure:
    """What a proxied request answers when its upstream failed: the
    upstream's own status, so a client reacts as it would to the provider
    (401 stops, an exhausted 529 may be retried later); a Retry-After the
    upstream sent travels along."""
    message = f"serve-teacher's upstream failed: {e}"  # ChatError messages are redacted
    if e.kind == "spend_limit":
        return HTTPFailure(429, message, "insufficient_quota")
    if e.kind == "http" and e.status is not None and 400 <= e.status <= 599:
        headers = {}
        if e.retry_after is not None:
            headers = {"retry-after-ms": str(int(e.retry_after * 1000)), "Retry-After": str(max(1, math.ceil(e.retry_after)))}
        return HTTPFailure(e.status, message, _KIND_BY_STATUS.get(e.status, "api_error"), headers)
    if e.kind == "timeout":
        return HTTPFailure(504, message, "timeout_error")
    # A refused connection or a 200 we could not read: the gateway's upstream is bad.
    return HTTPFailure(502, message, "api_error")
