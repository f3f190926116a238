//! The `edge-session` command line: bad configs fail fast and say where.

use std::process::Command;

use edge_session_tests::{guest, host_binary};

fn serve(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(host_binary())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run edge-session");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn invalid_config_names_the_field_and_exits_2() {
    let counter = guest("counter");
    let cases = [
        (
            format!(
                "[[routes]]\nprefix = \"/c\"\ncomponent = \"{}\"\ndefault_ttl = \"often\"",
                counter.display()
            ),
            "routes[0].default_ttl",
        ),
        (
            format!(
                "[[routes]]\nprefix = \"c\"\ncomponent = \"{}\"",
                counter.display()
            ),
            "routes[0].prefix",
        ),
        (
            "[[routes]]\nprefix = \"/c\"\ncomponent = \"nothing-here.wasm\"".to_owned(),
            "routes[0].component",
        ),
        (
            format!(
                "listen = \"here\"\n[[routes]]\nprefix = \"/c\"\ncomponent = \"{}\"",
                counter.display()
            ),
            "listen",
        ),
        ("[store.embedded]\npath = \"x\"".to_owned(), "routes"),
        ("[[routes]\n".to_owned(), "line 1"),
    ];
    for (config, field) in cases {
        let (code, stderr) = serve(&config);
        assert_eq!(code, Some(2), "{config}\n{stderr}");
        assert!(stderr.contains(field), "{field} not named in: {stderr}");
    }
}

#[test]
fn a_component_that_is_not_a_handler_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x01\0\0\0").unwrap();
    let (code, stderr) = serve(&format!(
        "[engine]\ncache = false\n[store.embedded]\npath = \"{}\"\n[[routes]]\nprefix = \"/b\"\ncomponent = \"{}\"",
        dir.path().join("data").display(),
        bogus.display()
    ));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("bogus.wasm"),
        "the failing component is named: {stderr}"
    );
}
