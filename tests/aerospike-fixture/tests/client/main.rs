//! Drives the fixture with the real `aerospike` 3.0.0 client, the way a
//! backend would, so the fixture is checked against the client it stands in
//! for rather than against itself.

mod common;
mod faults;
mod maps;
mod records;
mod security;
