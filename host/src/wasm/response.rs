//! The responses the host writes itself, when no guest answers: a short
//! plain-text body with a status that says why.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// 503 with `Retry-After`: the route or the engine has no instance free.
pub(crate) fn overloaded() -> http::Response<HyperOutgoingBody> {
    let mut response = host_response(StatusCode::SERVICE_UNAVAILABLE, "busy, retry shortly\n");
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}

/// A short plain-text response made by the host itself.
pub fn host_response(status: StatusCode, message: &str) -> http::Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(Bytes::copy_from_slice(message.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
