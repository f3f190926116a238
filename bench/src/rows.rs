//! The rows of the table, what server each one starts, and how a row is
//! measured: start its processes, create the sessions, check that the
//! server keeps them, a throughput run, a latency run, then its memory.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::runtime::Runtime;

use crate::load::{self, Outcome, Workload};
use crate::servers::{self, AerospikeCluster, EdgeStore, Layout, RedisServer, Server};

/// Every request of the workload asks for this path.
const PATH: &str = "/count";

/// What a row runs.
enum Subject {
    /// edge-session serving a guest component.
    EdgeSession {
        guest: &'static str,
        /// Whether the route has sessions (the hello guest needs none).
        sessions: bool,
        aerospike: bool,
        /// Whether the route reuses instances (`reuse_instances`).
        reuse: bool,
    },
    /// The axum + tower-sessions comparator.
    Native { redis: bool },
}

impl Subject {
    fn keeps_sessions(&self) -> bool {
        match self {
            Subject::EdgeSession { sessions, .. } => *sessions,
            Subject::Native { .. } => true,
        }
    }
}

pub struct Row {
    /// "1", "3a", …: what the ratios refer to.
    pub id: &'static str,
    pub name: String,
    subject: Subject,
}

/// The rows, in the order they run.
pub fn all() -> Vec<Row> {
    let row = |id, name: &str, subject| Row {
        id,
        name: name.to_owned(),
        subject,
    };
    let edge = |guest, sessions, aerospike| Subject::EdgeSession {
        guest,
        sessions,
        aerospike,
        reuse: false,
    };
    let reusing = |guest| Subject::EdgeSession {
        guest,
        sessions: true,
        aerospike: false,
        reuse: true,
    };
    vec![
        row(
            "1",
            "edge-session, counter (Rust), embedded",
            edge("counter", true, false),
        ),
        row(
            "2",
            "edge-session, hello (Rust), no sessions",
            edge("hello", false, false),
        ),
        row(
            "3a",
            "axum + tower-sessions, MemoryStore",
            Subject::Native { redis: false },
        ),
        row(
            "3b",
            "axum + tower-sessions, Redis",
            Subject::Native { redis: true },
        ),
        row(
            "4",
            &format!(
                "edge-session, counter (Rust), Aerospike ({})",
                AerospikeCluster::describe_target()
            ),
            edge("counter", true, true),
        ),
        row(
            "5js",
            "edge-session, counter (JS), embedded",
            edge("counter-js", true, false),
        ),
        row(
            "5py",
            "edge-session, counter (Python), embedded",
            edge("counter-py", true, false),
        ),
        row(
            "5c",
            "edge-session, counter (C), embedded",
            edge("counter-c", true, false),
        ),
        row(
            "1-reuse",
            "edge-session, counter (Rust), embedded, instances reused",
            reusing("counter"),
        ),
        row(
            "5py-reuse",
            "edge-session, counter (Python), embedded, instances reused",
            reusing("counter-py"),
        ),
        row(
            "5c-reuse",
            "edge-session, counter (C), embedded, instances reused",
            reusing("counter-c"),
        ),
    ]
}

/// How each row is driven.
pub struct Settings {
    pub duration: Duration,
    /// Connections of the throughput run.
    pub connections: usize,
    /// Connections of the latency run.
    pub latency_connections: usize,
    /// Sessions created before the runs.
    pub sessions: usize,
}

/// What one row came to.
pub enum RowResult {
    Measured(Box<Measurement>),
    /// Not run, and why (a guest that is not built).
    Skipped(String),
    Failed(anyhow::Error),
}

pub struct Measurement {
    /// At [`Settings::connections`].
    pub throughput: Outcome,
    /// At [`Settings::latency_connections`].
    pub latency: Outcome,
    /// Resident memory of the server process after both runs.
    pub rss_bytes: u64,
}

impl Row {
    pub fn run(&self, layout: &Layout, settings: &Settings, runtime: &Runtime) -> RowResult {
        if let Subject::EdgeSession { guest, .. } = self.subject {
            let path = layout.guest(guest);
            if !path.is_file() {
                return RowResult::Skipped(format!("{} is not built", path.display()));
            }
        }
        match self.measure(layout, settings, runtime) {
            Ok(measurement) => RowResult::Measured(Box::new(measurement)),
            Err(error) => RowResult::Failed(error),
        }
    }

    fn measure(
        &self,
        layout: &Layout,
        settings: &Settings,
        runtime: &Runtime,
    ) -> Result<Measurement> {
        let dir = layout.scratch_dir(&format!("row-{}-", self.id))?;
        // Backends live until the end of the row; the server, declared
        // after them, stops first.
        let (mut redis_server, mut cluster) = (None, None);
        let server = match self.subject {
            Subject::EdgeSession {
                guest,
                sessions,
                aerospike,
                reuse,
            } => {
                let store = if aerospike {
                    EdgeStore::Aerospike(cluster.insert(AerospikeCluster::from_env()?))
                } else {
                    EdgeStore::Embedded
                };
                servers::edge_session(
                    layout,
                    &layout.guest(guest),
                    sessions,
                    if reuse {
                        "reuse_instances = true\n"
                    } else {
                        ""
                    },
                    store,
                    dir.path(),
                    "",
                )?
            }
            Subject::Native { redis } => {
                let store = if redis {
                    redis_server.insert(RedisServer::start(dir.path())?).url()
                } else {
                    "memory".to_owned()
                };
                servers::native(&store, dir.path())?
            }
        };
        self.measure_server(&server, settings, runtime)
            .with_context(|| format!("the server's log:\n{}", server.log_tail()))
    }

    fn measure_server(
        &self,
        server: &Server,
        settings: &Settings,
        runtime: &Runtime,
    ) -> Result<Measurement> {
        let cookies = runtime.block_on(load::create_sessions(
            server.addr,
            PATH,
            settings.sessions,
            settings.latency_connections,
        ))?;
        if self.subject.keeps_sessions() {
            let cookie = cookies
                .first()
                .context("the server set no session cookie")?;
            // A session created above has a count of 1; two more visits make 2 and 3.
            let counts = runtime.block_on(async {
                let first = load::session_count(server.addr, PATH, cookie).await?;
                let second = load::session_count(server.addr, PATH, cookie).await?;
                anyhow::Ok((first, second))
            })?;
            if counts != (2, 3) {
                bail!("the server does not keep its sessions: counts {counts:?}, not (2, 3)");
            }
        }
        let workload = Workload {
            addr: server.addr,
            path: PATH.to_owned(),
            cookies: cookies.into(),
        };
        let throughput = runtime.block_on(load::run(
            &workload,
            settings.connections,
            settings.duration,
        ))?;
        let latency = runtime.block_on(load::run(
            &workload,
            settings.latency_connections,
            settings.duration,
        ))?;
        Ok(Measurement {
            throughput,
            latency,
            rss_bytes: server.rss_bytes()?,
        })
    }
}
