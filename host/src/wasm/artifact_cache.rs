//! Precompiled components on disk, so a restart does not recompile guests.
//!
//! Compiling a component with Cranelift takes from a fraction of a second
//! (Rust) to several seconds (JavaScript, Python); loading a precompiled
//! artifact is a memory map. Artifacts are keyed by a SHA-256 of the
//! component's bytes and by the engine's compatibility hash (wasmtime
//! version and every setting that affects code), so a changed component or
//! an upgraded host never loads a stale artifact.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context;
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled artifacts.
#[derive(Clone, Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The platform's cache directory for edge-session, if there is one.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(base.join("edge-session").join("components"))
    }

    /// Loads `wasm`, whose SHA-256 is `digest`, from its artifact, compiling
    /// and storing it first when there is none. Returns the component and
    /// whether it came from disk.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &[u8; 32],
    ) -> anyhow::Result<(Component, bool)> {
        let path = self.artifact_path(engine, digest);
        if path.exists() {
            // SAFETY: the file is one this cache wrote with `Component::serialize`
            // for an engine with the same compatibility hash (part of its name).
            // wasmtime still checks its header and refuses foreign artifacts.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(error) => tracing::warn!(
                    artifact = %path.display(),
                    error = format!("{error:#}"),
                    "ignoring unusable precompiled artifact"
                ),
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(error) = self.store(&path, &component) {
            tracing::warn!(dir = %self.dir.display(), error = format!("{error:#}"), "could not cache a compiled component");
        }
        Ok((component, false))
    }

    fn artifact_path(&self, engine: &Engine, digest: &[u8; 32]) -> PathBuf {
        let mut engine_hasher = DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hasher);
        let name = format!(
            "{}-{:016x}.cwasm",
            hex(&digest[..16]),
            engine_hasher.finish()
        );
        self.dir.join(name)
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let bytes = component.serialize()?;
        // Write then rename, so a concurrent reader never maps half a file.
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, path)?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
