//! Hello: the smallest handler, with no session work at all.
//!
//! Every request gets `hello` as plain text. It shows the least a handler
//! needs (a [`Handler`] exported with [`export_handler!`]), and the
//! benchmark (`scripts/bench.sh`) serves it to measure what the host costs
//! per request without the session store: a fresh sandboxed instance, the
//! wasi:http plumbing and HTTP itself.

use edge_session_guest::{Handler, Request, Response, export_handler};

struct Hello;

impl Handler for Hello {
    fn handle(_request: Request) -> Response {
        Response::text(200, "hello\n")
    }
}

export_handler!(Hello);
