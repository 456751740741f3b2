//! The package database collector: sees every tar entry of every layer once and keeps only
//! the few files an SBOM is made from (package databases and `os-release`).
//!
//! A layer is scanned on its own into [`LayerFindings`] — the files of interest it holds plus
//! its whiteouts and opaque markers — which is a pure function of the layer's bytes, so it can
//! be computed while a copy streams the layer (in any order, concurrently) and cached by the
//! layer's digest. [`merge`] then applies the findings bottom-up, in manifest order, exactly as
//! an overlay filesystem would: a layer's whiteouts hide what lies below it, its own entries
//! win over everything below.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::build::decompress::{TarTail, open_layer};
use crate::build::rootfs::{join, normalize, parent};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// A package database larger than this is not a package database: refuse rather than hold it.
const MAX_FILE: u64 = 256 * 1024 * 1024;

/// dpkg's database; distroless images use one stanza file per package in `status.d/`.
pub const DPKG_STATUS: &str = "var/lib/dpkg/status";
/// Distroless dpkg: one stanza file per package.
pub const DPKG_STATUS_DIR: &str = "var/lib/dpkg/status.d";
/// apk's database.
pub const APK_INSTALLED: &str = "lib/apk/db/installed";
/// rpm 4.16+ keeps its database in SQLite, at one of these places depending on the distro.
pub const RPM_SQLITE: &[&str] = &[
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "usr/share/rpm/rpmdb.sqlite",
];
/// Where `os-release` lives.
pub const OS_RELEASE: &[&str] = &["etc/os-release", "usr/lib/os-release"];

/// Whether an entry at `path` is one the SBOM is made from.
fn of_interest(path: &str) -> bool {
    path == DPKG_STATUS
        || path == APK_INSTALLED
        || RPM_SQLITE.contains(&path)
        || OS_RELEASE.contains(&path)
        || (parent(path) == DPKG_STATUS_DIR && !path.ends_with(".md5sums"))
}

/// What one layer contributes to the merged view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerFindings {
    /// Files of interest, by normalised path.
    pub files: BTreeMap<String, Found>,
    /// Paths this layer deletes from the layers below (with everything under them).
    pub whiteouts: Vec<String>,
    /// Directories whose lower contents this layer hides.
    pub opaque: Vec<String>,
}

/// A file of interest as one layer holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Found {
    /// A regular file's bytes.
    File(#[serde(with = "bytes_b64")] Vec<u8>),
    /// `os-release` is usually a symlink to `../usr/lib/os-release`.
    Symlink(String),
}

mod bytes_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
/// A layer could not be scanned.
pub enum ScanError {
    /// The layer is not a readable tar archive.
    #[error("layer {digest}: {detail}")]
    Layer {
        /// The layer's digest.
        digest: String,
        /// What went wrong.
        detail: String,
    },
}

/// Scans one layer blob (gzip, zstd or plain tar, chosen by its first bytes).
pub fn scan_layer(digest: &str, blob: Box<dyn Read + Send>) -> Result<LayerFindings, ScanError> {
    let err = |detail: String| ScanError::Layer {
        digest: digest.to_owned(),
        detail,
    };
    // The archive crates quote the bytes they could not parse: escaped, never raw.
    let quoted = |e: &dyn std::fmt::Display| crate::registry::wire::snippet(&e.to_string());
    let reader = open_layer(blob).map_err(|e| err(format!("cannot decompress: {}", quoted(&e))))?;
    let (reader, _end) = TarTail::new(reader);
    let mut archive = tar::Archive::new(reader);
    let mut findings = LayerFindings::default();
    let entries = archive
        .entries()
        .map_err(|e| err(format!("not a tar archive: {}", quoted(&e))))?;
    let mut first = true;
    for item in entries {
        let mut item = item.map_err(|e| {
            err(if first {
                format!(
                    "not a tar archive (its first header does not parse: {}); an image layer \
                     is a tar, gzip- or zstd-compressed: the blob is damaged or not a layer",
                    quoted(&e)
                )
            } else {
                format!("corrupt tar entry: {}", quoted(&e))
            })
        })?;
        first = false;
        let raw = item
            .path()
            .map_err(|e| err(format!("unreadable entry name: {}", quoted(&e))))?
            .to_string_lossy()
            .into_owned();
        let Some(path) = normalize(&raw) else {
            continue;
        };
        let name = path.rsplit('/').next().unwrap_or_default();
        if name == OPAQUE_MARKER {
            findings.opaque.push(parent(&path).to_owned());
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            findings.whiteouts.push(join(parent(&path), hidden));
            continue;
        }
        if !of_interest(&path) {
            continue;
        }
        let link = item
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.to_string_lossy().into_owned());
        match item.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if item.size() > MAX_FILE {
                    return Err(err(format!(
                        "/{path} is {} bytes, more than a package database can be",
                        item.size()
                    )));
                }
                let mut data = Vec::with_capacity(item.size() as usize);
                item.read_to_end(&mut data)
                    .map_err(|e| err(format!("reading /{path}: {e}")))?;
                findings.files.insert(path, Found::File(data));
            }
            tar::EntryType::Symlink => {
                findings
                    .files
                    .insert(path, Found::Symlink(link.unwrap_or_default()));
            }
            tar::EntryType::Link => {
                // A hardlink shares its target's inode; the target was written earlier in the
                // same layer (tar order), so it is already here when it is of interest.
                let target = link.as_deref().and_then(normalize).unwrap_or_default();
                if let Some(found) = findings.files.get(&target).cloned() {
                    findings.files.insert(path, found);
                }
            }
            // A directory or device where a database was: whatever lay below is hidden.
            _ => {
                findings.whiteouts.push(path);
            }
        }
    }
    Ok(findings)
}

/// The merged files of interest of an image: what its root filesystem holds at those paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedFiles {
    /// Each path of interest and what the top-most layer holding it has there.
    pub files: BTreeMap<String, Found>,
}

fn hides(deleted: &str, path: &str) -> bool {
    deleted.is_empty()
        || path == deleted
        || path
            .strip_prefix(deleted)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Applies layer findings bottom-up (manifest order).
pub fn merge<'a>(layers: impl IntoIterator<Item = &'a LayerFindings>) -> MergedFiles {
    let mut files: BTreeMap<String, Found> = BTreeMap::new();
    for layer in layers {
        // A layer's deletions act on the layers below it, never on its own entries.
        files.retain(|path, _| {
            !layer.whiteouts.iter().any(|w| hides(w, path))
                && !layer
                    .opaque
                    .iter()
                    .any(|dir| hides(dir, path) && path != dir)
        });
        for (path, found) in &layer.files {
            files.insert(path.clone(), found.clone());
        }
    }
    MergedFiles { files }
}

impl MergedFiles {
    /// The contents of `path`, following symlinks among the files of interest.
    pub fn read(&self, path: &str) -> Option<&[u8]> {
        let mut current = path.to_owned();
        for _ in 0..8 {
            match self.files.get(&current)? {
                Found::File(data) => return Some(data),
                Found::Symlink(target) => {
                    let joined = if target.starts_with('/') {
                        target.clone()
                    } else {
                        format!("{}/{target}", parent(&current))
                    };
                    current = resolve_dots(&joined)?;
                }
            }
        }
        None
    }

    /// The regular files directly inside `dir`, in name order.
    pub fn children<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.files
            .iter()
            .filter_map(move |(path, found)| match found {
                Found::File(data) if parent(path) == dir => Some((path.as_str(), data.as_slice())),
                _ => None,
            })
    }
}

fn resolve_dots(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            match data {
                Some(data) => {
                    header.set_size(data.len() as u64);
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    header.set_cksum();
                    builder.append_data(&mut header, path, *data).unwrap();
                }
                None => {
                    header.set_size(0);
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_cksum();
                    builder.append_data(&mut header, path, &[][..]).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    fn scan(bytes: Vec<u8>) -> LayerFindings {
        scan_layer("sha256:test", Box::new(std::io::Cursor::new(bytes))).unwrap()
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_databases_only() {
        let bottom = scan(layer(&[
            ("var/lib/dpkg/status.d/base", Some(b"Package: base\n")),
            ("var/lib/dpkg/status.d/gone", Some(b"Package: gone\n")),
            ("var/lib/dpkg/status.d/gone.md5sums", Some(b"x")),
            ("lib/apk/db/installed", Some(b"P:musl\n")),
            ("usr/bin/other", Some(b"ignored")),
        ]));
        assert_eq!(
            bottom.files.len(),
            3,
            "md5sums and other files are not kept"
        );
        let middle = scan(layer(&[
            ("var/lib/dpkg/status.d/.wh.gone", Some(b"")),
            ("lib/apk/db/.wh..wh..opq", Some(b"")),
            ("lib/apk/db/installed", Some(b"P:busybox\n")),
        ]));
        let merged = merge([&bottom, &middle]);
        assert!(merged.read("var/lib/dpkg/status.d/gone").is_none());
        assert_eq!(
            merged.read("var/lib/dpkg/status.d/base"),
            Some(&b"Package: base\n"[..])
        );
        assert_eq!(
            merged.read("lib/apk/db/installed"),
            Some(&b"P:busybox\n"[..]),
            "the opaque marker hides the lower file, not the layer's own"
        );
        // Order matters: the same findings merged the other way round give the other answer.
        let reversed = merge([&middle, &bottom]);
        assert_eq!(
            reversed.read("lib/apk/db/installed"),
            Some(&b"P:musl\n"[..])
        );
    }

    #[test]
    fn a_directory_whiteout_hides_everything_below_and_symlinks_resolve() {
        let mut bottom = scan(layer(&[("var/lib/dpkg/status", Some(b"Package: a\n"))]));
        bottom.files.insert(
            "etc/os-release".into(),
            Found::Symlink("../usr/lib/os-release".into()),
        );
        bottom.files.insert(
            "usr/lib/os-release".into(),
            Found::File(b"ID=debian\n".to_vec()),
        );
        let top = scan(layer(&[("var/lib/.wh.dpkg", Some(b""))]));
        let merged = merge([&bottom, &top]);
        assert!(merged.read(DPKG_STATUS).is_none());
        assert_eq!(merged.read("etc/os-release"), Some(&b"ID=debian\n"[..]));
    }

    #[test]
    fn findings_survive_the_cache_round_trip() {
        let findings = scan(layer(&[
            ("var/lib/dpkg", None),
            ("var/lib/dpkg/status", Some(b"Package: a\n\xff")),
        ]));
        let text = serde_json::to_string(&findings).unwrap();
        assert_eq!(
            serde_json::from_str::<LayerFindings>(&text).unwrap(),
            findings
        );
    }

    #[test]
    fn a_blob_that_is_not_a_tar_is_named_so_without_its_raw_bytes() {
        // Bytes whose first 512 fail tar's checksum field, with a newline and invalid UTF-8.
        let noise: Vec<u8> = (0..2048u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let error = scan_layer("sha256:noise", Box::new(std::io::Cursor::new(noise)))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("layer sha256:noise: not a tar archive"),
            "{error}"
        );
        assert!(error.contains("damaged or not a layer"), "{error}");
        assert!(
            !error.chars().any(char::is_control),
            "raw bytes in: {error:?}"
        );
    }
}
