//! The cost of one guest→host session call, apart from the rest of a
//! request: a host serves the faulty test guest, whose `/calls?n=N` makes N
//! `get-field` calls on one session of the embedded store in one request.
//! The difference between the median request with N = [`CALLS`] and with
//! N = 0, divided by [`CALLS`], is the cost of one call.

use std::time::Duration;

use anyhow::Result;
use tokio::runtime::Runtime;

use crate::load;
use crate::servers::{self, EdgeStore, Layout};

/// Calls in the measured request.
const CALLS: u32 = 1000;

/// Requests of each kind; the median of each is compared.
const REQUESTS: usize = 200;

/// The median cost of one `get-field` call, guest to host and back.
pub fn per_call(layout: &Layout, runtime: &Runtime) -> Result<Duration> {
    let dir = layout.scratch_dir("calls-")?;
    let guest = layout.guest("faulty");
    let server = servers::edge_session(
        layout,
        &guest,
        true,
        "",
        EdgeStore::Embedded,
        dir.path(),
        "",
    )?;
    let median = |path: String| -> Result<Duration> {
        let mut times = runtime.block_on(load::sequential_times(server.addr, &path, REQUESTS))?;
        times.sort();
        Ok(times[times.len() / 2])
    };
    // Interleaved, so that a burst of noise hits both alike.
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        without.push(median("/count/calls?n=0".to_owned())?);
        with.push(median(format!("/count/calls?n={CALLS}"))?);
    }
    without.sort();
    with.sort();
    Ok(with[1].saturating_sub(without[1]) / CALLS)
}
