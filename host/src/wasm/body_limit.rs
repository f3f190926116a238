//! Byte limits on bodies, enforced while they stream.
//!
//! A declared `Content-Length` over the limit is refused before anything
//! runs; a body that declares nothing (chunked) is cut off with an error
//! once it passes the limit. For a request, the guest's read then fails and
//! the host answers 413 in place of whatever the guest responds (wasmtime
//! 48 does not pass the error code on to guests, so they cannot tell a
//! limit from a broken connection); for a response, the host aborts the
//! connection.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error;

/// A body that fails with `exceeded(limit)` once more than `limit` bytes
/// have passed.
pub struct LimitedBody<B> {
    inner: B,
    limit: u64,
    seen: u64,
    exceeded: fn(Option<u64>) -> Error,
    /// Set once the limit was passed.
    tripped: Arc<AtomicBool>,
}

impl<B> LimitedBody<B> {
    /// Limits a request body. The flag returned tells whether the limit
    /// was passed.
    pub fn request(inner: B, limit: u64) -> (Self, Arc<AtomicBool>) {
        let body = Self::new(inner, limit, Error::HttpRequestBodySize);
        let tripped = body.tripped.clone();
        (body, tripped)
    }

    /// Limits a response body; the connection is aborted past the limit.
    pub fn response(inner: B, limit: u64) -> Self {
        Self::new(inner, limit, Error::HttpResponseBodySize)
    }

    fn new(inner: B, limit: u64, exceeded: fn(Option<u64>) -> Error) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
            exceeded,
            tripped: Arc::default(),
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        this.tripped.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err((this.exceeded)(Some(this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `Content-Length` a message declares, if it declares a valid one.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that yields one data frame per given size.
    struct Chunks(std::collections::VecDeque<usize>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
            let next = self.0.pop_front();
            Poll::Ready(next.map(|n| Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
        }
    }

    fn chunks(sizes: &[usize]) -> Chunks {
        Chunks(sizes.iter().copied().collect())
    }

    #[tokio::test]
    async fn passes_bodies_up_to_the_limit() {
        let (body, tripped) = LimitedBody::request(chunks(&[4, 4, 2]), 10);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 10);
        assert!(!tripped.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn fails_once_past_the_limit() {
        let (body, tripped) = LimitedBody::request(chunks(&[4, 4, 4]), 10);
        let error = body.collect().await.err().unwrap();
        assert!(
            matches!(error, Error::HttpRequestBodySize(Some(10))),
            "{error:?}"
        );
        assert!(tripped.load(Ordering::Acquire));
        let error = LimitedBody::response(chunks(&[11]), 10)
            .collect()
            .await
            .err()
            .unwrap();
        assert!(
            matches!(error, Error::HttpResponseBodySize(Some(10))),
            "{error:?}"
        );
    }
}
