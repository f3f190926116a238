//! A stand-in upstream for guests to call (the faulty guest's
//! `/outgoing?to=`): it accepts each request and holds it unanswered until
//! the test releases it. A guest the gate holds is known to be running and
//! not yet done, so a test can act "while a request is in flight" without
//! guessing with a sleep.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

/// How long a wait for a guest's call may take before the test calls it
/// hung: only a hang reaches it.
const HANG: Duration = Duration::from_secs(120);

pub struct Gate {
    /// `host:port`, for a route's `outgoing_http` and the guest's `?to=`.
    pub address: String,
    arrivals: mpsc::Receiver<TcpStream>,
    held: Vec<TcpStream>,
}

impl Gate {
    pub fn open() -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (sender, arrivals) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                // The whole request head: then the guest surely waits for us.
                read_head(&mut stream);
                if sender.send(stream).is_err() {
                    return;
                }
            }
        });
        Gate {
            address,
            arrivals,
            held: Vec::new(),
        }
    }

    /// Waits until `n` more guests have called and are held.
    pub fn wait_for(&mut self, n: usize) {
        for _ in 0..n {
            let stream = self
                .arrivals
                .recv_timeout(HANG)
                .expect("a guest calls the gate");
            self.held.push(stream);
        }
    }

    /// Answers every held call (`200`, body `ok`): their guests go on.
    pub fn release_all(&mut self) {
        for mut stream in self.held.drain(..) {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    }
}

/// Reads a request head off `stream` (up to the blank line).
pub fn read_head(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(HANG));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
}
