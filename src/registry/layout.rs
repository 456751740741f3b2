//! OCI image layout backend: a directory holding one image layout per repository
//! (`<root>/<repository>/{oci-layout,index.json,blobs/sha256/…}`).
//!
//! Tags are `org.opencontainers.image.ref.name` annotations in `index.json`; referrers use the
//! fallback tag schema. Every write goes to a temporary file that is renamed into place, so a
//! crash never leaves a torn `index.json` or a blob whose name lies about its content.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::digest::{self, BlobLocation, is_digest, sha256_digest, sha256_hex};
use super::stats::{Endpoint, Method, RequestCounter};
use super::{
    ByteStream, Descriptor, Referrer, Registry, RegistryError, RequestStats, Result, TagDeletion,
    manifest, referrers,
};

/// The `Registry` operations over the directory.
mod ops;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const READ_CHUNK: usize = 256 * 1024;

/// A directory of OCI image layouts, one per repository.
pub struct LayoutRegistry {
    root: PathBuf,
    name: String,
    counter: RequestCounter,
    /// One lock per repository guards read-modify-write of its `index.json`.
    index_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl LayoutRegistry {
    /// The OCI image layout directory `root` (created on first write).
    pub fn new(root: PathBuf) -> Self {
        LayoutRegistry {
            name: root.display().to_string(),
            root,
            counter: RequestCounter::default(),
            index_locks: Mutex::new(HashMap::new()),
        }
    }

    fn io(&self, message: String, source: std::io::Error) -> RegistryError {
        RegistryError::Io {
            registry: self.name.clone(),
            message,
            error: source,
        }
    }

    fn protocol(&self, repository: &str, reference: &str, message: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.name.clone(),
            repository: repository.to_owned(),
            reference: reference.to_owned(),
            message,
        }
    }

    /// The layout directory of a repository; refuses names that would escape the root.
    fn repo_dir(&self, repository: &str) -> Result<PathBuf> {
        let valid = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !valid {
            return Err(self.protocol(repository, "", "invalid repository name".into()));
        }
        Ok(self.root.join(repository))
    }

    fn blob_path(&self, repository: &str, digest: &str) -> Result<PathBuf> {
        let hex = sha256_hex(digest)
            .ok_or_else(|| self.protocol(repository, digest, "not a sha256 digest".into()))?;
        Ok(self
            .repo_dir(repository)?
            .join("blobs")
            .join("sha256")
            .join(hex))
    }

    fn index_lock(&self, repository: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.index_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(repository.to_owned()).or_default().clone()
    }

    /// Create the layout skeleton of a repository if it is missing.
    async fn ensure_layout(&self, repository: &str) -> Result<PathBuf> {
        let dir = self.repo_dir(repository)?;
        let blobs = dir.join("blobs").join("sha256");
        tokio::fs::create_dir_all(&blobs)
            .await
            .map_err(|e| self.io(format!("cannot create {}", blobs.display()), e))?;
        let marker = dir.join("oci-layout");
        if !tokio::fs::try_exists(&marker).await.unwrap_or(false) {
            self.write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .await?;
        }
        Ok(dir)
    }

    async fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let temp = temp_path(path);
        let result = async {
            let mut file = tokio::fs::File::create(&temp).await?;
            file.write_all(bytes).await?;
            file.sync_all().await?;
            tokio::fs::rename(&temp, path).await
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(self.io(format!("cannot write {}", path.display()), e));
        }
        Ok(())
    }

    async fn read_index(&self, repository: &str) -> Result<Option<Value>> {
        let path = self.repo_dir(repository)?.join("index.json");
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(format!("cannot read {}", path.display()), e)),
        };
        manifest::parse(&bytes)
            .map(Some)
            .map_err(|m| self.protocol(repository, "index.json", m))
    }

    /// Read-modify-write `index.json` under the repository lock; `edit` works on the
    /// `manifests` array of the existing index (fields it does not touch survive).
    async fn edit_index(
        &self,
        repository: &str,
        edit: impl FnOnce(&mut Vec<Value>) -> bool,
    ) -> Result<bool> {
        let lock = self.index_lock(repository);
        let _guard = lock.lock().await;
        let dir = self.ensure_layout(repository).await?;
        let mut index = self.read_index(repository).await?.unwrap_or_else(
            || json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": []}),
        );
        let object = index
            .as_object_mut()
            .ok_or_else(|| self.protocol(repository, "index.json", "not an object".into()))?;
        let manifests = object
            .entry("manifests")
            .or_insert_with(|| Value::Array(Vec::new()));
        let Some(list) = manifests.as_array_mut() else {
            return Err(self.protocol(
                repository,
                "index.json",
                "`manifests` is not an array".into(),
            ));
        };
        if !edit(list) {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(&index)
            .map_err(|e| self.protocol(repository, "index.json", e.to_string()))?;
        self.write_atomic(&dir.join("index.json"), &bytes).await?;
        Ok(true)
    }

    /// The descriptor a tag points at, from `index.json`.
    async fn tagged(&self, repository: &str, tag: &str) -> Result<Option<Descriptor>> {
        let Some(index) = self.read_index(repository).await? else {
            return Ok(None);
        };
        Ok(index
            .get("manifests")
            .and_then(Value::as_array)
            .and_then(|items| items.iter().rev().find(|item| ref_name(item) == Some(tag)))
            .and_then(manifest::descriptor_from_json))
    }

    async fn read_blob(&self, repository: &str, digest: &str) -> Result<Option<Bytes>> {
        let path = self.blob_path(repository, digest)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(format!("cannot read {}", path.display()), e)),
        }
    }

    /// Store bytes as a blob (manifests are blobs in a layout).
    async fn write_blob_bytes(&self, repository: &str, bytes: &[u8]) -> Result<String> {
        self.ensure_layout(repository).await?;
        let digest = sha256_digest(bytes);
        let path = self.blob_path(repository, &digest)?;
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            self.write_atomic(&path, bytes).await?;
        }
        Ok(digest)
    }

    async fn resolve(&self, repository: &str, reference: &str) -> Result<Option<Descriptor>> {
        if is_digest(reference) {
            let Some(bytes) = self.read_blob(repository, reference).await? else {
                return Ok(None);
            };
            let media_type = guess_media_type(&bytes);
            Ok(Some(Descriptor {
                media_type,
                digest: reference.to_owned(),
                size: bytes.len() as u64,
            }))
        } else {
            self.tagged(repository, reference).await
        }
    }
}

fn ref_name(item: &Value) -> Option<&str> {
    item.get("annotations")?.get(REF_NAME)?.as_str()
}

fn guess_media_type(bytes: &[u8]) -> String {
    match manifest::parse(bytes) {
        Ok(value) => {
            let fallback = if value.get("manifests").is_some() {
                manifest::OCI_INDEX
            } else {
                manifest::OCI_MANIFEST
            };
            manifest::media_type_of(&value, fallback)
        }
        Err(_) => manifest::OCI_MANIFEST.to_owned(),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{:016x}", rand::random::<u64>()))
}
