//! What a rebuild changes inside the image, for a reviewer (`houba plan --show-content`): each
//! file the steps add or change, with a unified diff of text files, and the config's
//! environment edits. Computed by running the steps over the merged view of the base layers,
//! exactly as the rebuild does, without writing any layer.

use serde::Serialize;
use serde_json::Value;

use super::rootfs::{Entry, EntryKind, LayerBlob, MergedView};
use super::transform::{self, Changes};
use super::{BlobSource, BuildError, TransformRosters, image, platform_label, read_verified};
use crate::policy::resolved::TransformStep;

/// How a path differs between the base image and the rebuilt one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Not in the base image.
    Added,
    /// In the base image, with other content or metadata.
    Changed,
    /// No step removes files today; kept so the format can say so when one does.
    Removed,
}

/// What changed at one path, beyond its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ChangeDetail {
    /// A text file: its unified diff (`--- a/path`, `+++ b/path`, hunks).
    Text {
        /// The unified diff.
        diff: String,
    },
    /// A file that is not UTF-8 text: sizes only.
    Binary {
        /// Size in the base image, if it was there.
        before: Option<usize>,
        /// Size after the steps.
        after: usize,
    },
    /// A symbolic link: its targets.
    Symlink {
        /// The target in the base image, if it was a link.
        before: Option<String>,
        /// The target after the steps.
        after: String,
    },
    /// A directory.
    Directory,
    /// Same content; mode or owner changed.
    Metadata {
        /// Mode and owner in the base image (`0644 0:0`).
        before: String,
        /// Mode and owner after the steps.
        after: String,
    },
    /// A device or fifo.
    Other,
}

/// One path the steps add, change or remove (absolute, as in the image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// The path.
    pub path: String,
    /// Added, changed or removed.
    pub kind: ChangeKind,
    /// What changed.
    pub detail: ChangeDetail,
}

/// One environment variable the steps set in the image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvChange {
    /// The variable's name.
    pub key: String,
    /// Its value in the base image, if set.
    pub before: Option<String>,
    /// Its value after the steps.
    pub after: String,
}

/// Everything a rebuild changes in one image, or identically in several platforms' images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentChanges {
    /// For an index, the platforms these changes are those of (`linux/amd64`): the steps are
    /// the same on every platform, the base files may differ, so platforms whose changes are
    /// identical share one entry. Empty for a single image.
    pub platforms: Vec<String>,
    /// By path.
    pub files: Vec<FileChange>,
    /// The environment variables the steps set.
    pub env: Vec<EnvChange>,
}

/// Lists what `changes` does to the base `view`: pure.
pub(crate) fn list_changes(
    view: &MergedView,
    changes: &Changes,
    base_env: &[(String, String)],
) -> (Vec<FileChange>, Vec<EnvChange>) {
    let files = changes
        .entries
        .iter()
        .filter_map(|(real, after)| {
            let path = format!("/{real}");
            let before = view.entry(real);
            let kind = if before.is_some() {
                ChangeKind::Changed
            } else {
                ChangeKind::Added
            };
            let detail = describe(&path, before, after)?;
            Some(FileChange { path, kind, detail })
        })
        .collect();
    let env = changes
        .env
        .iter()
        .filter_map(|(key, after)| {
            let before = base_env
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone());
            (before.as_deref() != Some(after.as_str())).then(|| EnvChange {
                key: key.clone(),
                before,
                after: after.clone(),
            })
        })
        .collect();
    (files, env)
}

/// The detail of one change; `None` when the entry is identical to the base.
fn describe(path: &str, before: Option<&Entry>, after: &Entry) -> Option<ChangeDetail> {
    if before == Some(after) {
        return None;
    }
    let same_kind = before.is_some_and(|b| b.kind == after.kind);
    if same_kind {
        let meta = |e: &Entry| format!("mode {:o}, owner {}:{}", e.mode, e.uid, e.gid);
        return Some(ChangeDetail::Metadata {
            before: meta(before?),
            after: meta(after),
        });
    }
    let old_bytes = match before.map(|b| &b.kind) {
        Some(EntryKind::File(bytes)) => Some(bytes.as_slice()),
        _ => None,
    };
    Some(match &after.kind {
        EntryKind::File(new) => match (text(old_bytes.unwrap_or_default()), text(new)) {
            (Some(old), Some(new)) => ChangeDetail::Text {
                diff: similar::TextDiff::from_lines(old, new)
                    .unified_diff()
                    .context_radius(3)
                    .header(
                        &if old_bytes.is_some() {
                            format!("a{path}")
                        } else {
                            "/dev/null".to_string()
                        },
                        &format!("b{path}"),
                    )
                    .to_string(),
            },
            _ => ChangeDetail::Binary {
                before: old_bytes.map(<[u8]>::len),
                after: new.len(),
            },
        },
        EntryKind::Symlink(target) => ChangeDetail::Symlink {
            before: match before.map(|b| &b.kind) {
                Some(EntryKind::Symlink(t)) => Some(t.clone()),
                _ => None,
            },
            after: target.clone(),
        },
        EntryKind::Dir => ChangeDetail::Directory,
        EntryKind::Other => ChangeDetail::Other,
    })
}

/// UTF-8 without NUL bytes counts as text.
fn text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// What `steps` change in one image (manifest + config), reading only the paths the steps
/// look at from the base layers in `blobs`.
pub fn image_changes(
    image_label: &str,
    manifest: &[u8],
    config: &[u8],
    blobs: &dyn BlobSource,
    steps: &[TransformStep],
    rosters: &TransformRosters,
) -> Result<ContentChanges, BuildError> {
    let resolved = transform::resolve_steps(image_label, steps, rosters)?;
    let manifest_value = image::parse_json(image_label, "manifest", manifest)?;
    let base = image::read_base_manifest(image_label, &manifest_value)?;
    let layer_blobs: Vec<LayerBlob<'_>> = base
        .layer_digests
        .iter()
        .map(|d| LayerBlob { digest: d })
        .collect();
    let view = MergedView::read(
        image_label,
        &layer_blobs,
        blobs,
        transform::query_for(&resolved),
    )?;
    let changes = transform::apply_steps(image_label, &view, &resolved)?;
    let config_value = image::parse_json(image_label, "image config", config)?;
    let base_env: Vec<(String, String)> = config_value
        .pointer("/config/Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (files, env) = list_changes(&view, &changes, &base_env);
    Ok(ContentChanges {
        platforms: Vec::new(),
        files,
        env,
    })
}

/// What `steps` change in the image `manifest` names. For an index, in each of its image
/// manifests (attestations skipped; only `platforms` when the import filters them): every
/// platform is rebuilt, and its base files may differ. Platforms whose changes are identical
/// share one entry, so an index whose platforms all change alike reads as one list.
pub fn content_changes(
    image_label: &str,
    manifest: &[u8],
    blobs: &dyn BlobSource,
    steps: &[TransformStep],
    platforms: &[String],
    rosters: &TransformRosters,
) -> Result<Vec<ContentChanges>, BuildError> {
    let value = image::parse_json(image_label, "manifest", manifest)?;
    if !matches!(
        image::manifest_media_type(&value),
        Some(image::OCI_INDEX | image::DOCKER_MANIFEST_LIST)
    ) {
        return Ok(vec![one_image_changes(
            image_label,
            manifest.to_vec(),
            blobs,
            steps,
            rosters,
        )?]);
    }
    let entries: Vec<&Value> = value
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| {
            let attestation = m.pointer("/annotations/vnd.docker.reference.type")
                == Some(&Value::from("attestation-manifest"));
            let media = m.get("mediaType").and_then(Value::as_str);
            let kept = platforms.is_empty()
                || m.get("platform")
                    .and_then(platform_label)
                    .is_some_and(|p| platforms.contains(&p));
            !attestation
                && kept
                && matches!(media, Some(image::OCI_MANIFEST | image::DOCKER_MANIFEST))
        })
        .collect();
    if entries.is_empty() {
        return Err(BuildError::Unsupported {
            image: image_label.to_string(),
            detail: "the index holds no image manifest".to_string(),
        });
    }
    let mut groups: Vec<ContentChanges> = Vec::new();
    for entry in entries {
        let digest = entry.get("digest").and_then(Value::as_str).unwrap_or("");
        let platform = entry
            .get("platform")
            .and_then(platform_label)
            .unwrap_or_else(|| digest.to_string());
        let label = format!("{image_label} [{platform}]");
        let manifest = read_verified(&label, blobs, digest, "manifest")?;
        let changes = one_image_changes(&label, manifest, blobs, steps, rosters)?;
        match groups
            .iter_mut()
            .find(|g| g.files == changes.files && g.env == changes.env)
        {
            Some(group) => group.platforms.push(platform),
            None => groups.push(ContentChanges {
                platforms: vec![platform],
                ..changes
            }),
        }
    }
    Ok(groups)
}

/// What `steps` change in one image manifest (its config read from `blobs`).
fn one_image_changes(
    label: &str,
    manifest: Vec<u8>,
    blobs: &dyn BlobSource,
    steps: &[TransformStep],
    rosters: &TransformRosters,
) -> Result<ContentChanges, BuildError> {
    let label = label.to_string();
    let manifest_value = image::parse_json(&label, "manifest", &manifest)?;
    let config_digest = manifest_value
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| BuildError::Unsupported {
            image: label.clone(),
            detail: "the manifest has no config descriptor".to_string(),
        })?;
    let config = read_verified(&label, blobs, config_digest, "config")?;
    image_changes(&label, &manifest, &config, blobs, steps, rosters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Entry {
        Entry {
            kind: EntryKind::File(text.as_bytes().to_vec()),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn text_files_get_a_unified_diff_and_binaries_their_sizes() {
        let changed = describe(
            "/etc/timezone",
            Some(&file("Etc/UTC\n")),
            &file("Europe/Paris\n"),
        )
        .unwrap();
        assert_eq!(
            changed,
            ChangeDetail::Text {
                diff:
                    "--- a/etc/timezone\n+++ b/etc/timezone\n@@ -1 +1 @@\n-Etc/UTC\n+Europe/Paris\n"
                        .to_string()
            }
        );
        let added = describe("/etc/new", None, &file("a\n")).unwrap();
        assert_eq!(
            added,
            ChangeDetail::Text {
                diff: "--- /dev/null\n+++ b/etc/new\n@@ -0,0 +1 @@\n+a\n".to_string()
            }
        );
        let binary = Entry {
            kind: EntryKind::File(vec![0, 1, 2]),
            ..file("")
        };
        assert_eq!(
            describe("/bin/x", Some(&file("old")), &binary),
            Some(ChangeDetail::Binary {
                before: Some(3),
                after: 3
            })
        );
        assert_eq!(describe("/same", Some(&file("x")), &file("x")), None);
        let chmod = Entry {
            mode: 0o600,
            ..file("x")
        };
        assert!(matches!(
            describe("/m", Some(&file("x")), &chmod),
            Some(ChangeDetail::Metadata { .. })
        ));
        let link = Entry {
            kind: EntryKind::Symlink("/usr/share/zoneinfo/Europe/Paris".into()),
            ..file("")
        };
        let old_link = Entry {
            kind: EntryKind::Symlink("/usr/share/zoneinfo/Etc/UTC".into()),
            ..file("")
        };
        assert_eq!(
            describe("/etc/localtime", Some(&old_link), &link),
            Some(ChangeDetail::Symlink {
                before: Some("/usr/share/zoneinfo/Etc/UTC".into()),
                after: "/usr/share/zoneinfo/Europe/Paris".into()
            })
        );
    }
}
