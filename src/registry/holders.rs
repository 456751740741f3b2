//! Which repositories of a destination registry hold a blob, remembered from one run to the
//! next in houba's cache directory, so that a blob already placed in another repository of the
//! same registry is mounted there instead of uploaded again.
//!
//! The memory only ever suggests where to mount from: whether the target repository already
//! has the blob is always asked of the registry, and a mount the registry declines (the blob
//! was deleted or garbage-collected since) falls back to an upload. A stale or lost memory
//! costs bytes, never correctness.
//!
//! One file per destination registry: `<cache>/blob-holders/<sha256 of the name>.json`,
//! `{"<digest>": ["<repository>", ...]}`. Loaded the first time a blob is placed in that
//! registry (a run that places nothing reads nothing), written back once at the end of a run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use super::digest::sha256_digest;

type Holders = BTreeMap<String, BTreeSet<String>>;

#[derive(Default)]
struct Loaded {
    holders: Holders,
    changed: bool,
}

/// The remembered holders of every destination registry a run writes to.
#[derive(Default)]
pub struct HolderMemory {
    dir: Option<PathBuf>,
    registries: Mutex<HashMap<String, Loaded>>,
}

impl HolderMemory {
    /// A memory kept under `cache_dir` (none: remembered for this run only).
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        HolderMemory {
            dir: cache_dir.map(|d| d.join("blob-holders")),
            registries: Mutex::default(),
        }
    }

    fn file(&self, registry: &str) -> Option<PathBuf> {
        let name = sha256_digest(registry.as_bytes());
        let hex = name.strip_prefix("sha256:").unwrap_or(&name);
        Some(self.dir.as_ref()?.join(format!("{hex}.json")))
    }

    fn with<T>(&self, registry: &str, f: impl FnOnce(&mut Loaded) -> T) -> T {
        let mut registries = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        let loaded = registries
            .entry(registry.to_owned())
            .or_insert_with(|| Loaded {
                holders: self
                    .file(registry)
                    .and_then(|path| std::fs::read(path).ok())
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or_default(),
                changed: false,
            });
        f(loaded)
    }

    /// Repositories of `registry` remembered to hold `digest`, other than `except`.
    pub fn candidates(&self, registry: &str, digest: &str, except: &str) -> Vec<String> {
        self.with(registry, |loaded| {
            loaded
                .holders
                .get(digest)
                .map(|repos| repos.iter().filter(|r| *r != except).cloned().collect())
                .unwrap_or_default()
        })
    }

    /// `repository` of `registry` holds `digest` (it was just placed or found there).
    pub fn learn(&self, registry: &str, digest: &str, repository: &str) {
        self.with(registry, |loaded| {
            if loaded
                .holders
                .entry(digest.to_owned())
                .or_default()
                .insert(repository.to_owned())
            {
                loaded.changed = true;
            }
        })
    }

    /// `repository` of `registry` turned out not to hold `digest` (a declined mount).
    pub fn forget(&self, registry: &str, digest: &str, repository: &str) {
        self.with(registry, |loaded| {
            if let Some(repos) = loaded.holders.get_mut(digest)
                && repos.remove(repository)
            {
                loaded.changed = true;
                if repos.is_empty() {
                    loaded.holders.remove(digest);
                }
            }
        })
    }

    /// Write back what changed. Best effort: a memory that cannot be written only costs
    /// uploads on a later run.
    pub fn save(&self) {
        let Some(dir) = &self.dir else {
            return;
        };
        let registries = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        for (registry, loaded) in registries.iter().filter(|(_, l)| l.changed) {
            let Some(path) = self.file(registry) else {
                continue;
            };
            let bytes = serde_json::to_vec(&loaded.holders).unwrap_or_default();
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let written = std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&tmp, bytes))
                .and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(e) = written {
                tracing::warn!(registry, path = %path.display(), error = %e, "cannot remember which repositories hold which blobs; later runs may upload instead of mounting");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_across_instances_and_forgotten_on_decline() {
        let dir = tempfile::tempdir().unwrap();
        let memory = HolderMemory::new(Some(dir.path().to_path_buf()));
        memory.learn("r.example", "sha256:a", "one");
        memory.learn("r.example", "sha256:a", "two");
        memory.learn("other.example", "sha256:a", "three");
        memory.save();

        let again = HolderMemory::new(Some(dir.path().to_path_buf()));
        assert_eq!(again.candidates("r.example", "sha256:a", "two"), ["one"]);
        assert_eq!(
            again.candidates("other.example", "sha256:a", "x"),
            ["three"]
        );
        assert!(again.candidates("r.example", "sha256:b", "x").is_empty());
        again.forget("r.example", "sha256:a", "one");
        again.save();
        let third = HolderMemory::new(Some(dir.path().to_path_buf()));
        assert_eq!(third.candidates("r.example", "sha256:a", "x"), ["two"]);
    }

    #[test]
    fn without_a_directory_nothing_is_written() {
        let memory = HolderMemory::new(None);
        memory.learn("r", "sha256:a", "one");
        memory.save();
        assert_eq!(memory.candidates("r", "sha256:a", "x"), ["one"]);
    }
}
