//! Plain request and response values over wasi:http resources.
//!
//! Session handlers answer small requests with small responses, so the body
//! is read whole (up to [`MAX_REQUEST_BODY`]) before the handler runs and the
//! response is written whole after it returns. A client that went away
//! mid-response is not an error worth a panic: writing simply stops.

use std::cell::OnceCell;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::Handler;

/// Largest request body read for a handler; larger requests get a 413.
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;
/// Most bytes `blocking-write-and-flush` accepts per call.
const WRITE_CHUNK: usize = 4096;

/// An incoming request with its body read.
#[derive(Debug)]
pub struct Request {
    method: String,
    path_with_query: String,
    https: bool,
    /// Copied from the host on first use: many handlers never look.
    headers: OnceCell<Vec<(String, Vec<u8>)>>,
    incoming: IncomingRequest,
    body: Vec<u8>,
}

impl Request {
    /// `GET`, `POST`, …
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.path_with_query
            .split_once('?')
            .map_or(&self.path_with_query, |(path, _)| path)
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.path_with_query.split_once('?').map(|(_, query)| query)
    }

    /// Whether the client connected over TLS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The first value of a header (names are case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// The value of a cookie sent by the client.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == name)
            .map(|cookie| cookie.value().to_owned())
    }

    fn headers(&self) -> &[(String, Vec<u8>)] {
        self.headers
            .get_or_init(|| self.incoming.headers().entries())
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    fn read(incoming: IncomingRequest) -> Result<Self, Response> {
        let method = match incoming.method() {
            Method::Get => "GET".to_owned(),
            Method::Head => "HEAD".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Connect => "CONNECT".to_owned(),
            Method::Options => "OPTIONS".to_owned(),
            Method::Trace => "TRACE".to_owned(),
            Method::Patch => "PATCH".to_owned(),
            Method::Other(other) => other,
        };
        let https = matches!(incoming.scheme(), Some(Scheme::Https));
        let path_with_query = incoming.path_with_query().unwrap_or_else(|| "/".to_owned());
        let mut request = Self {
            method,
            path_with_query,
            https,
            headers: OnceCell::new(),
            incoming,
            body: Vec::new(),
        };
        if !declares_no_body(&request.method, &request.incoming) {
            request.body = read_body(&request.incoming)?;
        }
        Ok(request)
    }
}

/// Whether the request is a `GET` or `HEAD` without `Content-Length` or
/// `Transfer-Encoding`, and so has no body (RFC 9112, section 6.3). Page
/// loads are such: not opening their empty body saves a handful of host
/// calls per request.
fn declares_no_body(method: &str, incoming: &IncomingRequest) -> bool {
    if !matches!(method, "GET" | "HEAD") {
        return false;
    }
    let headers = incoming.headers();
    !headers.has("content-length") && !headers.has("transfer-encoding")
}

fn read_body(incoming: &IncomingRequest) -> Result<Vec<u8>, Response> {
    let unreadable = || Response::text(400, "could not read the request body\n");
    let body = incoming.consume().map_err(|()| unreadable())?;
    let stream = body.stream().map_err(|()| unreadable())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > MAX_REQUEST_BODY {
                    return Err(Response::text(413, "request body too large\n"));
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => return Err(unreadable()),
        }
    }
    drop(stream);
    let _trailers = IncomingBody::finish(body);
    Ok(bytes)
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, text: &str) -> Self {
        Self::new(status, text).header("content-type", "text/plain; charset=utf-8")
    }

    /// An `application/json` response.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status, body).header("content-type", "application/json"),
            Err(error) => Self::text(500, &format!("could not serialize the response: {error}\n")),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Adds a `Set-Cookie` header.
    pub fn set_cookie(self, cookie: &cookie::Cookie<'_>) -> Self {
        self.header("set-cookie", cookie.to_string())
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    fn send(self, out: ResponseOutparam) {
        let Some((response, body)) = self.outgoing() else {
            let fallback = Response::text(500, "the handler produced an invalid response\n");
            if let Some((response, body)) = fallback.outgoing() {
                ResponseOutparam::set(out, Ok(response));
                write_body(body, &fallback.body);
            }
            return;
        };
        ResponseOutparam::set(out, Ok(response));
        write_body(body, &self.body);
    }

    /// The wasi:http response, or `None` when a header or status is invalid.
    fn outgoing(&self) -> Option<(OutgoingResponse, OutgoingBody)> {
        let mut headers = self.headers.clone();
        headers.push((
            "content-length".to_owned(),
            self.body.len().to_string().into_bytes(),
        ));
        let fields = Fields::from_list(&headers).ok()?;
        let response = OutgoingResponse::new(fields);
        response.set_status_code(self.status).ok()?;
        let body = response.body().ok()?;
        Some((response, body))
    }
}

fn write_body(body: OutgoingBody, bytes: &[u8]) {
    let Ok(stream) = body.write() else {
        return;
    };
    for chunk in bytes.chunks(WRITE_CHUNK) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            // The client went away; nothing more to do.
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

/// Reads the request, runs the handler and sends its response. Called by
/// [`export_handler!`](crate::export_handler).
pub fn serve<H: Handler>(incoming: IncomingRequest, out: ResponseOutparam) {
    let response = match Request::read(incoming) {
        Ok(request) => H::handle(request),
        Err(response) => response,
    };
    response.send(out);
}
