"""A test guest in Python that spins on the CPU at `/loop` until the host
stops it, and answers "ok" anywhere else: the interpreter's loop must yield
to other requests as compiled Rust does (tests/tests/fairness.rs).
"""

from session_http import Request, Response, serve, text_response
from wit_world import exports


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        serve(handle, request, response_out)


def handle(request: Request) -> Response:
    if request.path.endswith("/loop"):
        n = 0
        while True:
            n += 1
    return text_response(200, "ok\n")
