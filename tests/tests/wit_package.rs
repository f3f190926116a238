//! The WIT package in `wit/`: `sessions.wit` stands alone, and the handler
//! world is exactly the standard wasi:http proxy plus the two session
//! interfaces.

use std::path::{Path, PathBuf};

use wit_parser::{Resolve, WorldId};

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

fn names<'a>(
    resolve: &Resolve,
    keys: impl Iterator<Item = &'a wit_parser::WorldKey>,
) -> Vec<String> {
    let mut names: Vec<String> = keys.map(|key| resolve.name_world_key(key)).collect();
    names.sort();
    names
}

fn world(resolve: &Resolve, package: wit_parser::PackageId, name: &str) -> WorldId {
    resolve.select_world(&[package], Some(name)).expect(name)
}

#[test]
fn sessions_wit_needs_no_other_package() {
    let mut resolve = Resolve::default();
    let package = resolve
        .push_file(wit_dir().join("sessions.wit"))
        .expect("sessions.wit resolves alone");
    let imports = world(&resolve, package, "session-imports");
    let world = &resolve.worlds[imports];
    assert_eq!(
        names(&resolve, world.imports.keys()),
        ["edge:session/current@0.1.0", "edge:session/sessions@0.1.0"]
    );
    assert!(world.exports.is_empty());
}

#[test]
fn handler_world_is_the_proxy_world_plus_session_interfaces() {
    let dir = wit_dir();
    assert!(
        dir.join("deps/http.wit").is_file(),
        "run scripts/wit-deps.sh to fill wit/deps"
    );
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(&dir).expect("wit/ resolves with its deps");
    let handler = &resolve.worlds[world(&resolve, package, "handler")];
    assert_eq!(
        names(&resolve, handler.exports.keys()),
        ["wasi:http/incoming-handler@0.2.12"]
    );

    let proxy_package = resolve
        .package_names
        .iter()
        .find(|(name, _)| name.namespace == "wasi" && name.name == "http")
        .map(|(_, id)| *id)
        .expect("wasi:http is among the deps");
    let proxy = &resolve.worlds[world(&resolve, proxy_package, "proxy")];
    let mut expected = names(&resolve, proxy.imports.keys());
    expected.push("edge:session/current@0.1.0".into());
    expected.push("edge:session/sessions@0.1.0".into());
    expected.sort();
    assert_eq!(names(&resolve, handler.imports.keys()), expected);
}
