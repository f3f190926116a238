"""Session counter: counts each visitor's page loads, like guest/counter.

`GET` anywhere under the route. The first visit starts a session (the host
sets its cookie); each later visit increments the `count` field atomically,
so concurrent tabs never lose a visit.
"""

import json

from componentize_py_types import Err
from session_http import Request, Response, json_response, serve, session_failure, text_response
from wit_world import exports
from wit_world.imports import current, sessions


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        serve(handle, request, response_out)


def handle(request: Request) -> Response:
    if request.method != "GET":
        response = text_response(405, "use GET\n")
        response.headers.append(("allow", b"GET"))
        return response
    try:
        return json_response(200, {"count": count_visit()})
    except Err as error:
        return session_failure(error.value)


def count_visit() -> int:
    session = current.load()
    if session is not None:
        try:
            return sessions.incr_field(session.id, "count", 1)
        except Err as error:
            # Expired between the two calls: start afresh below.
            if not isinstance(error.value, sessions.Error_NotFound):
                raise
    current.start(json.dumps({"count": 1}))
    return 1
