//! A minimal OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`) as a
//! blob source and sink for the engine: enough to rebuild an image held on disk and write the
//! result next to it (the `rebuild` example, the tests, the bench).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::image::sha256_digest;
use super::{BlobSource, BuiltImage, BuiltIndex};

/// The annotation naming a reference in `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout directory the native engine reads and writes with plain files (used by its tests and tools; registries have `registry::layout`).
pub struct LayoutDir {
    root: PathBuf,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl LayoutDir {
    /// The layout at `root` (not created until written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LayoutDir { root: root.into() }
    }

    /// Creates an empty layout at `root` (the directory may exist; an existing layout is kept).
    pub fn init(root: impl Into<PathBuf>) -> io::Result<Self> {
        let layout = LayoutDir::new(root);
        fs::create_dir_all(layout.root.join("blobs/sha256"))?;
        let marker = layout.root.join("oci-layout");
        if !marker.exists() {
            fs::write(marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = layout.root.join("index.json");
        if !index.exists() {
            fs::write(index, br#"{"schemaVersion":2,"manifests":[]}"#)?;
        }
        Ok(layout)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &str) -> io::Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| invalid(format!("`{digest}` is not a sha256 digest")))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    fn read_index(&self) -> io::Result<Value> {
        let bytes = fs::read(self.root.join("index.json"))?;
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("index.json: {e}")))
    }

    /// The descriptor a reference name points at: (media type, digest, size).
    pub fn resolve_ref(&self, name: &str) -> io::Result<(String, String, u64)> {
        let index = self.read_index()?;
        let found = index
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|m| {
                m.get("annotations")
                    .and_then(|a| a.get(REF_NAME))
                    .and_then(Value::as_str)
                    == Some(name)
            })
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: no reference `{name}`", self.root.display()),
                )
            })?;
        let field = |k: &str| {
            found
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let size = found.get("size").and_then(Value::as_u64).unwrap_or(0);
        Ok((field("mediaType"), field("digest"), size))
    }

    /// The bytes of blob `digest`.
    pub fn read_blob(&self, digest: &str) -> io::Result<Vec<u8>> {
        fs::read(self.blob_path(digest)?)
    }

    /// Writes a blob; returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> io::Result<String> {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest)?;
        fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
        let temp = path.with_extension("partial");
        fs::File::create(&temp)?.write_all(bytes)?;
        fs::rename(temp, path)?;
        Ok(digest)
    }

    /// Moves (or copies, across file systems) a blob file written elsewhere into the layout.
    pub fn adopt_blob_file(&self, file: &Path, digest: &str) -> io::Result<()> {
        let path = self.blob_path(digest)?;
        fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
        if fs::rename(file, &path).is_err() {
            fs::copy(file, &path)?;
            fs::remove_file(file)?;
        }
        Ok(())
    }

    /// Points the reference `name` at a descriptor, replacing any previous one of that name.
    /// `index.json` is edited as JSON, so nothing else in it changes.
    pub fn set_ref(&self, name: &str, media_type: &str, digest: &str, size: u64) -> io::Result<()> {
        let mut index = self.read_index()?;
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| invalid("index.json has no manifests array".to_string()))?;
        manifests.retain(|m| {
            m.get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(Value::as_str)
                != Some(name)
        });
        manifests.push(serde_json::json!({
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "annotations": { REF_NAME: name },
        }));
        let bytes = serde_json::to_vec(&index).map_err(|e| invalid(e.to_string()))?;
        let temp = self.root.join("index.json.partial");
        fs::write(&temp, bytes)?;
        fs::rename(temp, self.root.join("index.json"))
    }

    /// Stores a rebuilt image (layer, config, manifest) and tags it `name`.
    pub fn store_image(&self, name: &str, built: &BuiltImage) -> io::Result<()> {
        self.store_image_blobs(built)?;
        self.set_ref(
            name,
            &built.manifest_media_type,
            &built.manifest_digest(),
            built.manifest.len() as u64,
        )
    }

    fn store_image_blobs(&self, built: &BuiltImage) -> io::Result<()> {
        if built.new_layer.path.exists() {
            self.adopt_blob_file(&built.new_layer.path, &built.new_layer.digest)?;
        }
        self.write_blob(&built.config)?;
        self.write_blob(&built.manifest)?;
        Ok(())
    }

    /// Stores every platform of a rebuilt index, then the index, and tags it `name`.
    pub fn store_index(&self, name: &str, built: &BuiltIndex) -> io::Result<()> {
        for platform in &built.platforms {
            self.store_image_blobs(&platform.image)?;
        }
        let digest = self.write_blob(&built.index)?;
        self.set_ref(
            name,
            &built.index_media_type,
            &digest,
            built.index.len() as u64,
        )
    }
}

impl BlobSource for LayoutDir {
    fn open_blob(&self, digest: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(fs::File::open(self.blob_path(digest)?)?))
    }
}
