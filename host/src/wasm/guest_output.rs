//! What a guest writes to stdout and stderr, captured for the host log.
//!
//! The first [`CAPTURE_BYTES`] of each request's output are kept and logged
//! under the request's span; the rest is dropped. Writing never fails, since
//! a failed write to stderr would panic a Rust guest, so a chatty guest loses
//! log lines, not its request. An instance reused across requests keeps the
//! same streams (a guest may hold on to them), so each request takes what its
//! run wrote.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use wasmtime_wasi::async_trait;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of each stream kept per request.
pub const CAPTURE_BYTES: usize = 4096;

/// How much a guest may write in one go: writes are never refused.
const WRITE_PERMIT: usize = 64 * 1024;

/// One captured stream: a handle the guest writes through, shared with the
/// host that takes its contents.
#[derive(Clone, Default)]
pub struct CapturedStream(Arc<Mutex<BytesMut>>);

impl CapturedStream {
    /// What was written since the last call, up to [`CAPTURE_BYTES`].
    pub fn take(&self) -> Bytes {
        self.lock().split().freeze()
    }

    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.lock();
        let room = CAPTURE_BYTES.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BytesMut> {
        // The buffer stays consistent even if a writer panicked.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for CapturedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A guest's stdout and stderr.
#[derive(Clone, Default)]
pub struct GuestOutput {
    pub stdout: CapturedStream,
    pub stderr: CapturedStream,
}

impl GuestOutput {
    /// Logs what the guest wrote during this request, stderr as a warning
    /// when the request failed.
    pub fn log(&self, route: &str, failed: bool) {
        let stdout = self.stdout.take();
        if !stdout.is_empty() {
            let stdout = String::from_utf8_lossy(&stdout);
            tracing::info!(route, stdout = %stdout.trim_end(), "guest stdout");
        }
        let stderr = self.stderr.take();
        if !stderr.is_empty() {
            let stderr = String::from_utf8_lossy(&stderr);
            if failed {
                tracing::warn!(route, stderr = %stderr.trim_end(), "guest stderr");
            } else {
                tracing::info!(route, stderr = %stderr.trim_end(), "guest stderr");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_of_each_request_and_never_refuses_a_write() {
        let mut stream = CapturedStream::default();
        for _ in 0..3 {
            stream
                .write(Bytes::from(vec![b'x'; CAPTURE_BYTES]))
                .expect("writes never fail");
        }
        assert_eq!(stream.check_write().unwrap(), WRITE_PERMIT);
        assert_eq!(stream.take().len(), CAPTURE_BYTES);
        // The next request starts with an empty capture.
        stream.write(Bytes::from_static(b"next\n")).unwrap();
        assert_eq!(stream.take(), Bytes::from_static(b"next\n"));
        assert!(stream.take().is_empty());
    }
}
