//! Builds the C guest components without installing `wit-bindgen-cli` and
//! `wasm-tools` (minutes of `cargo install` each): the same two steps, from
//! the libraries those tools are made of.
//!
//! ```text
//! componentize-c bindings WIT_DIR WORLD OUT_DIR   # C bindings for WORLD
//! componentize-c component CORE_WASM OUT_WASM     # core module -> component
//! ```
//!
//! `bindings` writes `WORLD.c`, `WORLD.h` and `WORLD_component_type.o`
//! (the world's type, which the linker keeps in the core module).
//! `component` wraps a module built for wasm32-wasi (preview1) with the
//! preview1 reactor adapter of wasmtime 48, so that its libc calls go
//! through WASI 0.2 like every other guest's.

use std::path::Path;

use anyhow::{Context, Result, bail};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::Files;
use wit_bindgen_core::wit_parser::Resolve;
use wit_component::ComponentEncoder;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["bindings", wit, world, out] => bindings(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out)),
        _ => bail!(
            "usage: componentize-c bindings WIT_DIR WORLD OUT_DIR\n       \
             componentize-c component CORE_WASM OUT_WASM"
        ),
    }
}

fn bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(wit)?;
    let world = resolve.select_world(&[package], Some(world))?;
    let mut files = Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn component(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    let component = ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()?;
    std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))
}
