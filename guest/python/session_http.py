"""What the Python handlers share, as the Rust guest SDK does for Rust ones.

A handler is a function from `Request` to `Response`: the request body is
read whole before it runs and the response written whole after it returns.
A session call that fails raises `componentize_py_types.Err` holding the WIT
`error` variant; `session_failure` turns it into the status and
`{"error": message}` that the Rust guests answer with.
"""

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from componentize_py_types import Err, Ok
from wit_world.imports import sessions, types
from wit_world.imports.streams import StreamError_Closed

# Larger request bodies get a 413, as in the Rust SDK.
MAX_REQUEST_BODY = 1024 * 1024
# Most bytes `blocking-write-and-flush` accepts per call.
WRITE_CHUNK = 4096

_METHODS = {
    types.Method_Get: "GET",
    types.Method_Head: "HEAD",
    types.Method_Post: "POST",
    types.Method_Put: "PUT",
    types.Method_Delete: "DELETE",
    types.Method_Connect: "CONNECT",
    types.Method_Options: "OPTIONS",
    types.Method_Trace: "TRACE",
    types.Method_Patch: "PATCH",
}


@dataclass
class Request:
    method: str
    # The path, without the query.
    path: str
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def json_response(status: int, value: Any) -> Response:
    body = json.dumps(value, separators=(",", ":")).encode()
    return Response(status, body, [("content-type", b"application/json")])


def text_response(status: int, text: str) -> Response:
    return Response(status, text.encode(), [("content-type", b"text/plain; charset=utf-8")])


class Refusal(Exception):
    """A response to send at once, raised from anywhere in a handler."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.response = json_response(status, {"error": message})


def session_failure(error: sessions.Error) -> Response:
    """The response for a failed session call."""
    match error:
        case sessions.Error_NotFound():
            status, message = 404, "session not found"
        case sessions.Error_Conflict():
            status, message = 409, "session changed since it was read"
        case sessions.Error_InvalidArgument(why):
            status, message = 400, f"invalid argument: {why}"
        case sessions.Error_TooLarge():
            status, message = 413, "session too large"
        case sessions.Error_AccessDenied():
            status, message = 403, "this route has no session access"
        case sessions.Error_Unavailable(why):
            status, message = 503, f"session store unavailable: {why}"
        case sessions.Error_Internal(why):
            status, message = 500, f"session host failure: {why}"
    return json_response(status, {"error": message})


def serve(
    handle: Callable[[Request], Response],
    incoming: types.IncomingRequest,
    response_out: types.ResponseOutparam,
) -> None:
    """Reads the request, runs `handle` and sends its response."""
    try:
        response = handle(_read(incoming))
    except Refusal as refusal:
        response = refusal.response
    _send(response, response_out)


def _read(incoming: types.IncomingRequest) -> Request:
    method = incoming.method()
    name = method.value if isinstance(method, types.Method_Other) else _METHODS[type(method)]
    path = (incoming.path_with_query() or "/").split("?", 1)[0]
    try:
        body = incoming.consume()
        with body.stream() as stream:
            chunks, size = [], 0
            while True:
                try:
                    chunk = stream.blocking_read(64 * 1024)
                except Err as error:
                    if isinstance(error.value, StreamError_Closed):
                        break
                    raise
                size += len(chunk)
                if size > MAX_REQUEST_BODY:
                    raise Refusal(413, "request body too large")
                chunks.append(chunk)
    except Err:
        raise Refusal(400, "could not read the request body")
    return Request(name, path, b"".join(chunks))


def _send(response: Response, response_out: types.ResponseOutparam) -> None:
    headers = response.headers + [("content-length", str(len(response.body)).encode())]
    outgoing = types.OutgoingResponse(types.Fields.from_list(headers))
    outgoing.set_status_code(response.status)
    body = outgoing.body()
    types.ResponseOutparam.set(response_out, Ok(outgoing))
    with body.write() as stream:
        for start in range(0, len(response.body), WRITE_CHUNK):
            try:
                stream.blocking_write_and_flush(response.body[start : start + WRITE_CHUNK])
            except Err:
                # The client went away; nothing more to do.
                return
    types.OutgoingBody.finish(body, None)
