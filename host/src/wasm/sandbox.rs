//! What a route's guests may do: the limits of their sandbox and what they
//! may reach beyond it. Both are fixed when the route is loaded.

use std::path::PathBuf;
use std::time::Duration;

use crate::wasm::outgoing_http::OutgoingHttp;

/// What a route's guests may reach beyond their sandbox: nothing unless
/// configured.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    /// Where the guest may send HTTP requests.
    pub outgoing_http: OutgoingHttp,
    /// Environment variables the guest sees (settings, not secrets of the host).
    pub env: Vec<(String, String)>,
    /// A host directory the guest may read, never write, mounted at `/`.
    pub read_only_dir: Option<PathBuf>,
}

/// Per-route sandbox limits.
#[derive(Clone, Copy, Debug)]
pub struct GuestLimits {
    /// Cap on the guest's linear memories, in bytes.
    pub max_memory_bytes: usize,
    /// Wall-clock deadline for the whole request, counted from when it
    /// reaches the route (waiting for an instance included).
    pub timeout: Duration,
    /// Largest request body; larger requests get a 413.
    pub max_request_bytes: u64,
    /// Largest response body a guest may send.
    pub max_response_bytes: u64,
    /// Instances of this route running at once.
    pub max_concurrency: usize,
    /// How long a request waits for one of those instances when all are
    /// busy; then it gets a 503 with `Retry-After` (never an unbounded queue).
    pub max_queue_wait: Duration,
    /// Instances kept after a request to serve later ones; 0 (the default)
    /// runs every request in a fresh instance.
    pub max_idle_instances: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(10),
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 8 * 1024 * 1024,
            max_concurrency: 100,
            max_queue_wait: Duration::from_millis(100),
            max_idle_instances: 0,
        }
    }
}
