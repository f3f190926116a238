//! The `edge-session` command line: bad configs fail fast and say where.

use std::process::Command;

use edge_session_tests::{guest, host_binary};

/// Runs `edge-session <command> --config FILE` on `config` written in `dir`;
/// returns the exit status, stdout and stderr.
fn run(command: &str, config: &str, dir: &std::path::Path) -> (Option<i32>, String, String) {
    let path = dir.join("edge.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(host_binary())
        .args([command, "--config"])
        .arg(&path)
        .output()
        .expect("run edge-session");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn serve(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run("serve", config, dir.path());
    (code, stderr)
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

fn check(config: &str, dir: &std::path::Path) -> (Option<i32>, String, String) {
    run("check", config, dir)
}

#[test]
fn check_compiles_and_links_every_route_and_names_each_failure() {
    let dir = tempfile::tempdir().unwrap();
    let route = |prefix: &str, component: &std::path::Path| {
        format!(
            "[[routes]]\nprefix = \"{prefix}\"\ncomponent = \"{}\"\n",
            component.display()
        )
    };
    let base = "[engine]\ncache = false\n";
    let good = format!(
        "{base}{}{}",
        route("/counter", &guest("counter")),
        route("/shop", &guest("cart"))
    );
    let (code, stdout, stderr) = check(&good, dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("ok, 2 routes"), "{stdout}");
    assert!(
        !dir.path().join("data").exists(),
        "check opens no store: {stderr}"
    );

    // Not wasm at all, a core module that is no component, a component that
    // does not link: each is reported under its route, the good route is not.
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm").unwrap();
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    // A valid component that imports what the host does not provide.
    let unlinkable = dir.path().join("unlinkable.wasm");
    let wasm = wat::parse_str(
        r#"(component (import "example:missing/api" (instance (export "f" (func)))))"#,
    )
    .unwrap();
    std::fs::write(&unlinkable, wasm).unwrap();
    let bad = format!(
        "{base}{}{}{}{}",
        route("/counter", &guest("counter")),
        route("/garbage", &garbage),
        route("/module", &module),
        route("/unlinkable", &unlinkable)
    );
    let (code, _, stderr) = check(&bad, dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("routes[1].component"), "{stderr}");
    assert!(stderr.contains("routes[2].component"), "{stderr}");
    assert!(
        stderr.contains("routes[3].component") && stderr.contains("example:missing/api"),
        "{stderr}"
    );
    assert!(!stderr.contains("routes[0]"), "{stderr}");

    let (code, _, stderr) = check("[[routes]]\nprefix = \"/x\"\n", dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("routes[0].component"), "{stderr}");
}

#[test]
fn check_lists_every_config_problem_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[routes]]\nprefix = \"c\"\ncomponent = \"{}\"\n\
         [[routes]]\nprefix = \"/d\"\ncomponent = \"missing.wasm\"\ntimeout = \"0s\"\n",
        guest("counter").display()
    );
    let (code, _, stderr) = check(&config, dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    let problems: Vec<_> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(problems.len(), 3, "{stderr}");
    for field in [
        "routes[0].prefix",
        "routes[1].component",
        "routes[1].timeout",
    ] {
        assert!(stderr.contains(field), "{field} not named in: {stderr}");
    }
}
