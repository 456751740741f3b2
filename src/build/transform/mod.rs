//! Transforms: each step states which paths it needs to see, then edits a workspace laid over
//! the merged view. The workspace collects the changed entries (at their real, symlink-free
//! paths) and the config edits; the layer writer turns them into one new layer.

mod ca;
mod packages;
mod timezone;

use std::collections::BTreeMap;

pub(crate) use ca::{CaCert, anchor_file_name};

use super::TransformRosters;
use super::error::BuildError;
use super::rootfs::{Entry, EntryKind, Lookup, LookupError, MergedView, Query, join, parent};
use crate::config::PackageMirror;
use crate::policy::resolved::TransformStep;

/// A step with its roster references replaced by what they name (PEM bytes, mirror URLs).
/// This is also what the recipe digest is computed over, so it holds only what the step
/// uses: a `rewritePackageSources` that names `managers` carries only their URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResolvedStep {
    InjectCa(Vec<CaCert>),
    RewritePackageSources {
        name: String,
        mirror: PackageMirror,
    },
    SetTimezone(String),
    /// Only the Dockerfile backend carries it out; the native engine refuses it.
    Run(String),
}

impl ResolvedStep {
    pub fn name(&self) -> &'static str {
        match self {
            ResolvedStep::InjectCa(_) => "injectCA",
            ResolvedStep::RewritePackageSources { .. } => "rewritePackageSources",
            ResolvedStep::SetTimezone(_) => "setTimezone",
            ResolvedStep::Run(_) => "run",
        }
    }

    /// A short human description, used in the config history (`created_by`).
    pub fn describe(&self) -> String {
        match self {
            ResolvedStep::InjectCa(certs) => {
                let names: Vec<&str> = certs.iter().map(|c| c.name.as_str()).collect();
                format!("injectCA({})", names.join(","))
            }
            ResolvedStep::RewritePackageSources { name, .. } => {
                format!("rewritePackageSources({name})")
            }
            ResolvedStep::SetTimezone(zone) => format!("setTimezone({zone})"),
            ResolvedStep::Run(command) => format!("run({command})"),
        }
    }

    /// The canonical form hashed into the recipe digest.
    pub fn canonical(&self) -> serde_json::Value {
        match self {
            ResolvedStep::InjectCa(certs) => serde_json::json!({
                "injectCA": { "certs": certs.iter().map(|c| serde_json::json!({
                    "name": c.name, "pem": c.pem,
                })).collect::<Vec<_>>() }
            }),
            ResolvedStep::RewritePackageSources { name, mirror } => serde_json::json!({
                "rewritePackageSources": { "mirror": {
                    "name": name, "apt": mirror.apt, "apk": mirror.apk, "yum": mirror.yum,
                } }
            }),
            ResolvedStep::SetTimezone(zone) => {
                serde_json::json!({ "setTimezone": { "zone": zone } })
            }
            ResolvedStep::Run(command) => serde_json::json!({ "run": { "command": command } }),
        }
    }

    fn ask(&self, query: &mut Query) {
        match self {
            ResolvedStep::InjectCa(_) => ca::ask(query),
            ResolvedStep::RewritePackageSources { .. } => packages::ask(query),
            ResolvedStep::SetTimezone(zone) => timezone::ask(query, zone),
            ResolvedStep::Run(_) => {}
        }
    }

    fn apply(&self, ws: &mut Workspace<'_>) -> Result<(), String> {
        match self {
            ResolvedStep::InjectCa(certs) => ca::apply(ws, certs),
            ResolvedStep::RewritePackageSources { mirror, .. } => packages::apply(ws, mirror),
            ResolvedStep::SetTimezone(zone) => timezone::apply(ws, zone),
            ResolvedStep::Run(_) => Err(
                "the native engine cannot run commands; such images are built from a Dockerfile"
                    .to_string(),
            ),
        }
    }
}

/// Looks up every roster reference of `steps` and validates what it finds.
pub(crate) fn resolve_steps(
    image: &str,
    steps: &[TransformStep],
    rosters: &TransformRosters,
) -> Result<Vec<ResolvedStep>, BuildError> {
    steps
        .iter()
        .map(|step| match step {
            TransformStep::InjectCa { certs } => {
                if certs.is_empty() {
                    return Err(BuildError::Step {
                        image: image.to_string(),
                        step: "injectCA",
                        detail: "no certificates named; list at least one `ca_certs` roster entry"
                            .to_string(),
                    });
                }
                let resolved = certs
                    .iter()
                    .map(|name| ca::resolve(image, name, rosters))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(ResolvedStep::InjectCa(resolved))
            }
            TransformStep::RewritePackageSources { mirror, managers } => {
                let found = rosters.package_mirrors.get(mirror).ok_or_else(|| {
                    BuildError::UnknownRosterEntry {
                        image: image.to_string(),
                        step: "rewritePackageSources",
                        roster: "package_mirrors",
                        name: mirror.clone(),
                    }
                })?;
                packages::validate_mirror(image, mirror, found)?;
                Ok(ResolvedStep::RewritePackageSources {
                    name: mirror.clone(),
                    mirror: packages::used_part(image, mirror, found, managers)?,
                })
            }
            TransformStep::SetTimezone { zone } => {
                timezone::validate_zone_name(image, zone)?;
                Ok(ResolvedStep::SetTimezone(zone.clone()))
            }
            TransformStep::Run { command } => {
                if command.trim().is_empty() {
                    return Err(BuildError::Step {
                        image: image.to_string(),
                        step: "run",
                        detail: "the command is empty".to_string(),
                    });
                }
                Ok(ResolvedStep::Run(command.clone()))
            }
        })
        .collect()
}

/// The paths every step of a recipe needs to see.
pub(crate) fn query_for(steps: &[ResolvedStep]) -> Query {
    let mut query = Query::default();
    for step in steps {
        step.ask(&mut query);
    }
    query
}

/// What the steps changed: new or replaced entries keyed by real path, and config edits.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub entries: BTreeMap<String, Entry>,
    /// Environment variables to set in the image config (`KEY` → value).
    pub env: BTreeMap<String, String>,
}

/// Applies the steps in order; a later step sees what earlier ones wrote.
pub(crate) fn apply_steps(
    image: &str,
    view: &MergedView,
    steps: &[ResolvedStep],
) -> Result<Changes, BuildError> {
    let mut ws = Workspace {
        view,
        changes: Changes::default(),
    };
    for step in steps {
        step.apply(&mut ws).map_err(|detail| BuildError::Step {
            image: image.to_string(),
            step: step.name(),
            detail,
        })?;
    }
    Ok(ws.changes)
}

/// The merged view with the pending changes laid over it.
pub(crate) struct Workspace<'a> {
    view: &'a MergedView,
    changes: Changes,
}

/// A regular file as the workspace sees it.
pub(crate) struct FileRef {
    pub real: String,
    pub data: Vec<u8>,
    pub entry: Entry,
}

fn lookup_err(e: LookupError) -> String {
    format!("{e}; the image's symlinks cannot be resolved")
}

impl Workspace<'_> {
    /// Resolves `path` (following symlinks) to a regular file, with pending changes applied.
    pub fn file(&self, path: &str) -> Result<Option<FileRef>, String> {
        match self.view.resolve(path, true).map_err(lookup_err)? {
            Lookup::Found(real, entry) => {
                let entry = self.changes.entries.get(&real).unwrap_or(entry);
                match &entry.kind {
                    EntryKind::File(data) => Ok(Some(FileRef {
                        data: data.clone(),
                        entry: entry.clone(),
                        real,
                    })),
                    _ => Ok(None),
                }
            }
            Lookup::Absent(real) => match self.changes.entries.get(&real) {
                Some(
                    entry @ Entry {
                        kind: EntryKind::File(data),
                        ..
                    },
                ) => Ok(Some(FileRef {
                    data: data.clone(),
                    entry: entry.clone(),
                    real,
                })),
                _ => Ok(None),
            },
        }
    }

    /// The entry at `path` itself (its directory resolved, the last component not followed).
    pub fn entry_nofollow(&self, path: &str) -> Result<(String, Option<Entry>), String> {
        let dir = self.dir(parent(path))?;
        let name = path.rsplit('/').next().unwrap_or(path);
        let real = join(&dir.unwrap_or_else(|| parent(path).to_string()), name);
        let entry = self
            .changes
            .entries
            .get(&real)
            .or_else(|| self.view.entry(&real))
            .cloned();
        Ok((real, entry))
    }

    /// Resolves `path` to an existing directory's real path.
    pub fn dir(&self, path: &str) -> Result<Option<String>, String> {
        if path.is_empty() {
            return Ok(Some(String::new()));
        }
        match self.view.resolve(path, true).map_err(lookup_err)? {
            Lookup::Found(real, e) if e.kind == EntryKind::Dir => Ok(Some(real)),
            Lookup::Absent(real)
                if self
                    .changes
                    .entries
                    .get(&real)
                    .is_some_and(|e| e.kind == EntryKind::Dir) =>
            {
                Ok(Some(real))
            }
            _ => Ok(None),
        }
    }

    /// Like [`Workspace::dir`], creating missing directories. A created directory copies the
    /// mode and owner of its nearest existing ancestor: nothing is invented.
    pub fn ensure_dir(&mut self, path: &str) -> Result<String, String> {
        if let Some(real) = self.dir(path)? {
            return Ok(real);
        }
        if let Lookup::Found(real, _) = self.view.resolve(path, true).map_err(lookup_err)? {
            return Err(format!("/{real} exists and is not a directory"));
        }
        let parent_real = self.ensure_dir(parent(path))?;
        let name = path.rsplit('/').next().unwrap_or(path);
        let real = join(&parent_real, name);
        let like = self
            .changes
            .entries
            .get(&parent_real)
            .or_else(|| self.view.entry(&parent_real));
        let (mode, uid, gid) = like.map_or((0o755, 0, 0), |e| (e.mode, e.uid, e.gid));
        self.changes.entries.insert(
            real.clone(),
            Entry {
                kind: EntryKind::Dir,
                mode,
                uid,
                gid,
            },
        );
        Ok(real)
    }

    /// Files directly inside `dir` whose name ends with `suffix`, pending changes applied.
    pub fn children(&self, dir: &str, suffix: &str) -> Result<Vec<FileRef>, String> {
        let Some(real_dir) = self.dir(dir)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let names: Vec<String> = self
            .view
            .children(&real_dir, suffix)
            .map(|(p, _)| p.to_string())
            .collect();
        for path in names {
            if let Some(file) = self.file(&path)? {
                out.push(file);
            }
        }
        Ok(out)
    }

    pub fn put(&mut self, real: String, entry: Entry) {
        self.changes.entries.insert(real, entry);
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.changes.env.insert(key.to_string(), value.to_string());
    }
}
