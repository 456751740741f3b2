//! A merged, read-only view of an image's layers, limited to the paths the transforms ask for.
//!
//! Layers are streamed top-down: the first entry found for a path wins, whiteouts and opaque
//! directories hide what lies below them, and reading stops as soon as every asked path is
//! settled. Only the asked entries (metadata, plus contents for regular files) are kept.
//! Symlinks are resolved against the merged view; a link that leads outside the asked set
//! makes the view ask for its target and read the layers again (bounded).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Read;

use super::BlobSource;
use super::decompress::{TarTail, open_layer};
use super::error::BuildError;

/// Linux's own bound on symlinks followed while resolving one path.
const MAX_SYMLINK_HOPS: usize = 40;
/// Reading the layers again is only needed when a symlink or hardlink leads outside the asked
/// set; a handful of rounds covers any sane image.
const MAX_PASSES: usize = 8;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Normalises a tar entry name to the view's key: no leading `/` or `./`, no trailing `/`,
/// `.` components dropped. The root directory is `""`. `None` for names that climb out (`..`).
pub(crate) fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

pub(crate) fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

fn file_name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Proper ancestors of a path, nearest first, the root excluded.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = path;
    std::iter::from_fn(move || {
        let p = parent(cur);
        if p.is_empty() {
            None
        } else {
            cur = p;
            Some(p)
        }
    })
}

/// The direct children of `dir` whose name ends with `suffix`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChildGlob {
    pub dir: String,
    pub suffix: String,
}

/// What the transforms want to see. Asking for a path also asks for its ancestors (their
/// metadata is needed to resolve symlinks and to emit parent directory headers).
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    paths: BTreeSet<String>,
    globs: BTreeSet<ChildGlob>,
}

impl Query {
    pub fn path(&mut self, path: &str) {
        let Some(path) = normalize(path) else { return };
        for a in ancestors(&path) {
            self.paths.insert(a.to_string());
        }
        if !path.is_empty() {
            self.paths.insert(path);
        }
    }

    pub fn children(&mut self, dir: &str, suffix: &str) {
        let Some(dir) = normalize(dir) else { return };
        self.path(&dir);
        self.globs.insert(ChildGlob {
            dir,
            suffix: suffix.to_string(),
        });
    }

    /// Whether an entry at `path` is kept.
    fn wants(&self, path: &str) -> bool {
        self.paths.contains(path) || self.glob_matches(path)
    }

    fn glob_matches(&self, path: &str) -> bool {
        let (dir, name) = (parent(path), file_name(path));
        self.globs.iter().any(|g| {
            g.dir == dir && name.ends_with(&g.suffix) && !name.starts_with(WHITEOUT_PREFIX)
        })
    }

    /// Whether a whiteout or opaque marker at `path` can matter to an asked path.
    fn concerns(&self, path: &str) -> bool {
        let below = format!("{path}/");
        self.wants(path)
            || self.paths.iter().any(|p| p.starts_with(&below))
            || self
                .globs
                .iter()
                .any(|g| g.dir == path || g.dir.starts_with(&below))
    }
}

/// What a path is in the merged view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// Devices, fifos: their metadata is kept, never their contents.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// The result of resolving a path through the view.
#[derive(Debug)]
pub(crate) enum Lookup<'a> {
    Found(String, &'a Entry),
    /// The path does not exist; the string is where the lookup ended (symlinks followed).
    Absent(String),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LookupError {
    #[error("too many levels of symbolic links resolving /{0}")]
    Loop(String),
    #[error("/{0} was not read from the layers")]
    NotAsked(String),
}

/// The merged view: the topmost entry of every asked path that exists.
#[derive(Debug)]
pub(crate) struct MergedView {
    query: Query,
    entries: BTreeMap<String, Entry>,
    /// How many layers the last pass read (the rest were not opened).
    pub layers_read: usize,
}

/// One layer, as a digest in the blob source.
pub(crate) struct LayerBlob<'a> {
    pub digest: &'a str,
}

impl MergedView {
    /// Reads `layers` (given bottom-up, as in a manifest) top-down until `query` is settled,
    /// following symlinks and hardlinks that lead outside it.
    pub fn read(
        image: &str,
        layers: &[LayerBlob<'_>],
        blobs: &dyn BlobSource,
        mut query: Query,
    ) -> Result<MergedView, BuildError> {
        let mut link_targets: BTreeSet<(usize, String)> = BTreeSet::new();
        for _ in 0..MAX_PASSES {
            let pass = Pass::run(image, layers, blobs, &query, &link_targets)?;
            let mut view = MergedView {
                query: query.clone(),
                entries: pass.found,
                layers_read: pass.layers_read,
            };
            let mut grew = false;
            for (layer, target) in pass.pending_links {
                if !link_targets.insert((layer, target.clone())) {
                    return Err(BuildError::Layer {
                        image: image.to_string(),
                        digest: layers[layers.len() - 1 - layer].digest.to_string(),
                        detail: format!(
                            "hardlink target /{target} is not in the same layer; rebuild the base with self-contained layers"
                        ),
                    });
                }
                grew = true;
            }
            for missing in view.unresolved() {
                let before = query.paths.len();
                query.path(&missing);
                grew |= query.paths.len() != before;
            }
            for glob in view.moved_globs() {
                query.children(&glob.dir, &glob.suffix);
                grew = true;
            }
            if !grew {
                view.query = query;
                return Ok(view);
            }
        }
        Err(BuildError::Unsupported {
            image: image.to_string(),
            detail: format!(
                "symlinks in the image lead through more than {MAX_PASSES} rounds of lookups; check the image for symlink chains"
            ),
        })
    }

    /// Paths a lookup would need that the query does not cover yet.
    fn unresolved(&self) -> Vec<String> {
        let mut missing = Vec::new();
        let starts = self.query.paths.iter().chain(self.entries.keys());
        for path in starts {
            if let Err(LookupError::NotAsked(p)) = self.resolve(path, true) {
                missing.push(p);
            }
        }
        missing.sort();
        missing.dedup();
        missing
    }

    /// Globs whose directory turned out to be reached through a symlink.
    fn moved_globs(&self) -> Vec<ChildGlob> {
        let mut moved = Vec::new();
        for g in &self.query.globs {
            if let Ok(Lookup::Found(real, e)) = self.resolve(&g.dir, true)
                && e.kind == EntryKind::Dir
                && real != g.dir
            {
                let glob = ChildGlob {
                    dir: real,
                    suffix: g.suffix.clone(),
                };
                if !self.query.globs.contains(&glob) {
                    moved.push(glob);
                }
            }
        }
        moved
    }

    fn covers(&self, path: &str) -> bool {
        self.query.wants(path)
    }

    /// Resolves `path`, following symlinks in every component (and in the last one when
    /// `follow_last`).
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<Lookup<'_>, LookupError> {
        let mut queue: VecDeque<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        let mut cur = String::new();
        let mut hops = 0;
        while let Some(c) = queue.pop_front() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    cur = parent(&cur).to_string();
                    continue;
                }
                _ => {}
            }
            let next = join(&cur, &c);
            if !self.covers(&next) {
                let rest: Vec<String> = queue.iter().cloned().collect();
                let wanted = if rest.is_empty() {
                    next
                } else {
                    normalize(&format!("{next}/{}", rest.join("/"))).unwrap_or(next)
                };
                return Err(LookupError::NotAsked(wanted));
            }
            let Some(entry) = self.entries.get(&next) else {
                return Ok(Lookup::Absent(next));
            };
            match &entry.kind {
                EntryKind::Symlink(target) if follow_last || !queue.is_empty() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(LookupError::Loop(path.to_string()));
                    }
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    for part in target.split('/').rev().filter(|p| !p.is_empty()) {
                        queue.push_front(part.to_string());
                    }
                }
                EntryKind::Dir => cur = next,
                _ if queue.is_empty() => return Ok(Lookup::Found(next, entry)),
                // A file where a directory was expected: nothing exists below it.
                _ => return Ok(Lookup::Absent(next)),
            }
        }
        // Only reached when the path ended on a directory (or the root).
        match self.entries.get(&cur) {
            Some(entry) => Ok(Lookup::Found(cur, entry)),
            None => Ok(Lookup::Absent(cur)),
        }
    }

    /// The entry stored at exactly `path` (no symlink resolution).
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// The children of the (real, resolved) directory `dir` that the query asked for with
    /// `suffix`, in name order.
    pub fn children<'a>(
        &'a self,
        dir: &'a str,
        suffix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
        self.entries.iter().filter_map(move |(p, e)| {
            (parent(p) == dir && file_name(p).ends_with(suffix)).then_some((p.as_str(), e))
        })
    }
}

/// The state of one top-down read of the layers.
struct Pass {
    found: BTreeMap<String, Entry>,
    found_in: HashMap<String, usize>,
    /// Whited-out paths (hidden with everything below), with the layer that hid them.
    whiteouts: HashMap<String, usize>,
    /// Opaque directories: their contents in lower layers are hidden.
    opaque: HashMap<String, usize>,
    /// Hardlinks whose target was not kept: (layer index from the top, target).
    pending_links: Vec<(usize, String)>,
    layers_read: usize,
}

impl Pass {
    fn run(
        image: &str,
        layers: &[LayerBlob<'_>],
        blobs: &dyn BlobSource,
        query: &Query,
        link_targets: &BTreeSet<(usize, String)>,
    ) -> Result<Pass, BuildError> {
        let mut pass = Pass {
            found: BTreeMap::new(),
            found_in: HashMap::new(),
            whiteouts: HashMap::new(),
            opaque: HashMap::new(),
            pending_links: Vec::new(),
            layers_read: 0,
        };
        for (index, layer) in layers.iter().rev().enumerate() {
            let targets: BTreeSet<&str> = link_targets
                .iter()
                .filter(|(l, _)| *l == index)
                .map(|(_, t)| t.as_str())
                .collect();
            if targets.is_empty() && pass.settled(query, index) {
                break;
            }
            pass.read_layer(image, layer.digest, index, blobs, query, &targets)?;
            pass.layers_read += 1;
        }
        Ok(pass)
    }

    /// Whether `path` is hidden from layer `index` by something found in a layer above it.
    fn hidden(&self, path: &str, index: usize) -> bool {
        let above = |m: Option<&usize>| m.is_some_and(|l| *l < index);
        if above(self.whiteouts.get(path)) || above(self.found_in.get(path)) {
            return true;
        }
        ancestors(path).any(|a| {
            above(self.whiteouts.get(a))
                || above(self.opaque.get(a))
                || (above(self.found_in.get(a))
                    && self.found.get(a).is_some_and(|e| e.kind != EntryKind::Dir))
        })
    }

    /// Whether nothing in layer `index` or below can change what the query sees.
    fn settled(&self, query: &Query, index: usize) -> bool {
        let path_settled = |p: &str| self.found.contains_key(p) || self.hidden(p, index);
        query.paths.iter().all(|p| path_settled(p))
            && query.globs.iter().all(|g| {
                let dir_done = self
                    .found
                    .get(&g.dir)
                    .is_some_and(|e| e.kind != EntryKind::Dir);
                dir_done
                    || self.hidden(&g.dir, index)
                    || self.opaque.get(&g.dir).is_some_and(|l| *l < index)
            })
    }

    fn read_layer(
        &mut self,
        image: &str,
        digest: &str,
        index: usize,
        blobs: &dyn BlobSource,
        query: &Query,
        link_targets: &BTreeSet<&str>,
    ) -> Result<(), BuildError> {
        let layer_err = |detail: String| BuildError::Layer {
            image: image.to_string(),
            digest: digest.to_string(),
            detail,
        };
        let blob = blobs.open_blob(digest).map_err(|source| BuildError::Blob {
            image: image.to_string(),
            digest: digest.to_string(),
            error: source,
        })?;
        let reader = open_layer(blob).map_err(|e| {
            layer_err(format!(
                "cannot decompress: {e}; the base image's layer is damaged"
            ))
        })?;
        let (reader, tar_end) = TarTail::new(reader);
        let mut archive = tar::Archive::new(reader);
        // End of the last entry's data in the tar stream, to tell a missing end-of-archive
        // marker (accepted) from a truncated entry (refused).
        let mut data_end = 0u64;
        // Regular files of this layer that a hardlink in the same layer may point at.
        let mut local: HashMap<String, Entry> = HashMap::new();
        let entries = archive.entries().map_err(|e| {
            layer_err(format!(
                "not a tar archive: {e}; the base image's layer is damaged"
            ))
        })?;
        for item in entries {
            let mut item = item.map_err(|e| {
                layer_err(format!(
                    "corrupt tar entry: {e}; the base image's layer is damaged"
                ))
            })?;
            data_end = item.raw_file_position() + item.size();
            let raw = item
                .path()
                .map_err(|e| layer_err(format!("unreadable entry name: {e}")))?;
            let Some(path) = normalize(&raw.to_string_lossy()) else {
                return Err(layer_err(format!(
                    "entry {} climbs out of the root",
                    raw.display()
                )));
            };
            if path.is_empty() {
                continue;
            }
            let name = file_name(&path);
            if name == OPAQUE_MARKER {
                let dir = parent(&path).to_string();
                if query.concerns(&dir) && !self.hidden(&dir, index) {
                    self.opaque.entry(dir).or_insert(index);
                }
                continue;
            }
            if let Some(hidden_name) = name.strip_prefix(WHITEOUT_PREFIX) {
                let target = join(parent(&path), hidden_name);
                if query.concerns(&target) && !self.hidden(&target, index) {
                    self.whiteouts.entry(target).or_insert(index);
                }
                continue;
            }
            let wanted = query.wants(&path) && !self.hidden(&path, index);
            let link_target = link_targets.contains(path.as_str());
            if !wanted && !link_target {
                continue;
            }
            let header = item.header();
            let mode = header.mode().unwrap_or(0o644);
            let uid = header.uid().unwrap_or(0);
            let gid = header.gid().unwrap_or(0);
            let entry_type = header.entry_type();
            let link_name = item
                .link_name()
                .map_err(|e| layer_err(format!("unreadable link target of /{path}: {e}")))?
                .map(|l| l.to_string_lossy().into_owned());
            let kind = match entry_type {
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut data = Vec::with_capacity(item.size() as usize);
                    item.read_to_end(&mut data)
                        .map_err(|e| layer_err(format!("reading /{path}: {e}")))?;
                    EntryKind::File(data)
                }
                tar::EntryType::Symlink => EntryKind::Symlink(link_name.unwrap_or_default()),
                tar::EntryType::Link => {
                    let target = link_name.as_deref().and_then(normalize).unwrap_or_default();
                    match local.get(&target) {
                        // One inode: the link has its target's contents, mode and owner.
                        Some(t) => {
                            let linked = t.clone();
                            self.keep(path, linked, index, wanted, &mut local);
                            continue;
                        }
                        None => {
                            self.pending_links.push((index, target));
                            continue;
                        }
                    }
                }
                _ => EntryKind::Other,
            };
            let entry = Entry {
                kind,
                mode,
                uid,
                gid,
            };
            self.keep(path, entry, index, wanted, &mut local);
        }
        if let Some(end) = tar_end.padded_at()
            && end < data_end
        {
            return Err(layer_err(format!(
                "truncated: the tar stream ends at byte {end}, inside an entry ending at {data_end}"
            )));
        }
        Ok(())
    }

    fn keep(
        &mut self,
        path: String,
        entry: Entry,
        index: usize,
        wanted: bool,
        local: &mut HashMap<String, Entry>,
    ) {
        if matches!(entry.kind, EntryKind::File(_)) {
            local.insert(path.clone(), entry.clone());
        }
        if wanted {
            // A later entry for the same path in the same layer replaces the earlier one.
            self.found_in.insert(path.clone(), index);
            self.found.insert(path, entry);
        }
    }
}
