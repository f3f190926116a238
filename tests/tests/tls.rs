//! The edge listener over TLS: a real rustls client against the real
//! binary with a certificate made for the test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use edge_session_tests::{BASE_CONFIG, Host, guest};
use rustls::pki_types::ServerName;

struct Tls {
    dir: tempfile::TempDir,
    client: Arc<rustls::ClientConfig>,
}

/// A self-signed certificate for `localhost`, written to PEM files, and a
/// client that trusts it.
fn certificate() -> Tls {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        certified.key_pair.serialize_pem(),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Tls {
        dir,
        client: Arc::new(client),
    }
}

fn config(tls: &Tls) -> String {
    format!(
        r#"
{BASE_CONFIG}
[tls]
cert = "{cert}"
key = "{key}"

[[routes]]
prefix = "/counter"
component = "{counter}"
namespace = "counter"
"#,
        cert = tls.dir.path().join("cert.pem").display(),
        key = tls.dir.path().join("key.pem").display(),
        counter = guest("counter").display(),
    )
}

/// One HTTPS request; returns the raw response.
fn https_get(tls: &Tls, address: &str, path: &str, cookie: Option<&str>) -> String {
    let server = ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(tls.client.clone(), server).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, TcpStream::connect(address).unwrap());
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    // rustls reports the peer's close without close_notify as an error
    // after the whole response has arrived; the text read so far is complete.
    let _ = stream.read_to_string(&mut reply);
    reply
}

#[test]
fn sessions_work_over_https_with_secure_host_cookies() {
    let tls = certificate();
    let host = Host::start(&config(&tls));
    let first = https_get(&tls, &host.address, "/counter", None);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains(r#"{"count":1}"#), "{first}");
    let set_cookie = first
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .expect("a session cookie");
    assert!(
        set_cookie.starts_with("__Host-sid=") && set_cookie.contains("; Secure"),
        "{set_cookie}"
    );
    let pair = set_cookie.split(';').next().unwrap();
    let second = https_get(&tls, &host.address, "/counter", Some(pair));
    assert!(second.contains(r#"{"count":2}"#), "{second}");

    // Plain HTTP on the TLS port gets no HTTP response of any status: the
    // connection closes, at most after a TLS alert record (content type
    // 21); and it harms nothing.
    let mut plain = TcpStream::connect(&host.address).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    plain
        .write_all(b"GET /counter HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    plain
        .read_to_end(&mut reply)
        .expect("the host closes the connection");
    assert!(
        reply.is_empty() || reply[0] == 21,
        "no plaintext service: {:?}",
        String::from_utf8_lossy(&reply)
    );
    let third = https_get(&tls, &host.address, "/counter", Some(pair));
    assert!(third.contains(r#"{"count":3}"#), "{third}");
}

#[test]
fn unreadable_certificates_are_config_errors_naming_the_field() {
    let tls = certificate();
    std::fs::write(tls.dir.path().join("key.pem"), "not a key").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("edge.toml");
    std::fs::write(&config_path, config(&tls)).unwrap();
    let output = std::process::Command::new(edge_session_tests::host_binary())
        .args(["serve", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`tls.key`"), "{stderr}");
}
