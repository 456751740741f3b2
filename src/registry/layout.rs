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

#[async_trait::async_trait]
impl Registry for LayoutRegistry {
    fn display_name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        self.counter.record(Method::Get, Endpoint::Tags);
        let Some(index) = self.read_index(repository).await? else {
            return Ok(Vec::new());
        };
        let mut tags: Vec<String> = index
            .get("manifests")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(ref_name)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    async fn head_manifest(&self, repository: &str, reference: &str) -> Result<Option<Descriptor>> {
        self.counter.record(Method::Head, Endpoint::Manifest);
        let Some(descriptor) = self.resolve(repository, reference).await? else {
            return Ok(None);
        };
        // A tag whose manifest blob is missing is not there.
        let present = tokio::fs::try_exists(self.blob_path(repository, &descriptor.digest)?)
            .await
            .unwrap_or(false);
        Ok(present.then_some(descriptor))
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<(Descriptor, Bytes)>> {
        self.counter.record(Method::Get, Endpoint::Manifest);
        let Some(descriptor) = self.resolve(repository, reference).await? else {
            return Ok(None);
        };
        let Some(bytes) = self.read_blob(repository, &descriptor.digest).await? else {
            return Ok(None);
        };
        let actual = sha256_digest(&bytes);
        if actual != descriptor.digest {
            return Err(RegistryError::DigestMismatch {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                reference: reference.to_owned(),
                expected: descriptor.digest,
                actual,
            });
        }
        Ok(Some((
            Descriptor {
                size: bytes.len() as u64,
                ..descriptor
            },
            bytes,
        )))
    }

    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<String> {
        self.counter.record(Method::Put, Endpoint::Manifest);
        let digest = sha256_digest(&bytes);
        if is_digest(reference) && reference != digest {
            return Err(RegistryError::DigestMismatch {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                reference: reference.to_owned(),
                expected: reference.to_owned(),
                actual: digest,
            });
        }
        self.write_blob_bytes(repository, &bytes).await?;
        if !is_digest(reference) {
            let entry = json!({
                "mediaType": media_type,
                "digest": digest,
                "size": bytes.len(),
                "annotations": {REF_NAME: reference},
            });
            self.edit_index(repository, |list| {
                list.retain(|item| ref_name(item) != Some(reference));
                list.push(entry);
                true
            })
            .await?;
        }
        Ok(digest)
    }

    async fn blob_exists(&self, repository: &str, digest: &str) -> Result<bool> {
        self.counter.record(Method::Head, Endpoint::Blob);
        Ok(tokio::fs::try_exists(self.blob_path(repository, digest)?)
            .await
            .unwrap_or(false))
    }

    async fn get_blob(&self, repository: &str, digest: &str) -> Result<ByteStream> {
        self.counter.record(Method::Get, Endpoint::Blob);
        let path = self.blob_path(repository, digest)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::NotFound {
                    registry: self.name.clone(),
                    repository: repository.to_owned(),
                    reference: digest.to_owned(),
                });
            }
            Err(e) => return Err(self.io(format!("cannot open {}", path.display()), e)),
        };
        let registry = self.name.clone();
        let stream = futures::stream::try_unfold(file, move |mut file| {
            let registry = registry.clone();
            async move {
                let mut buffer = BytesMut::with_capacity(READ_CHUNK);
                let read =
                    file.read_buf(&mut buffer)
                        .await
                        .map_err(|source| RegistryError::Io {
                            registry,
                            message: "blob read failed".into(),
                            error: source,
                        })?;
                Ok((read > 0).then(|| (buffer.freeze(), file)))
            }
        });
        Ok(digest::verify_stream(
            Box::pin(stream),
            BlobLocation {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                digest: digest.to_owned(),
            },
        ))
    }

    async fn put_blob(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        mut data: ByteStream,
    ) -> Result<()> {
        self.counter.record(Method::Put, Endpoint::Upload);
        self.ensure_layout(repository).await?;
        let path = self.blob_path(repository, digest)?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(());
        }
        let temp = temp_path(&path);
        let written: Result<(String, u64)> = async {
            let mut file = tokio::fs::File::create(&temp)
                .await
                .map_err(|e| self.io(format!("cannot create {}", temp.display()), e))?;
            let mut hasher = Sha256::new();
            let mut total = 0u64;
            while let Some(chunk) = data.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                total += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| self.io(format!("cannot write {}", temp.display()), e))?;
            }
            file.sync_all()
                .await
                .map_err(|e| self.io(format!("cannot sync {}", temp.display()), e))?;
            Ok((format!("sha256:{}", digest::hex(&hasher.finalize())), total))
        }
        .await;
        let outcome = match written {
            Ok((actual, _)) if actual != digest => Err(RegistryError::DigestMismatch {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                reference: digest.to_owned(),
                expected: digest.to_owned(),
                actual,
            }),
            Ok((_, total)) if total != size => Err(self.protocol(
                repository,
                digest,
                format!("blob is {total} bytes, descriptor says {size}"),
            )),
            Ok(_) => tokio::fs::rename(&temp, &path)
                .await
                .map_err(|e| self.io(format!("cannot rename into {}", path.display()), e)),
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        outcome
    }

    async fn mount_blob(
        &self,
        repository: &str,
        from_repository: &str,
        digest: &str,
    ) -> Result<bool> {
        self.counter.record(Method::Post, Endpoint::Upload);
        let source = self.blob_path(from_repository, digest)?;
        if !tokio::fs::try_exists(&source).await.unwrap_or(false) {
            return Ok(false);
        }
        self.ensure_layout(repository).await?;
        let target = self.blob_path(repository, digest)?;
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            return Ok(true);
        }
        // A hard link shares the bytes; across file systems fall back to a copy. Both go
        // through a temporary name so the target never appears half-written.
        let temp = temp_path(&target);
        let linked = match tokio::fs::hard_link(&source, &temp).await {
            Ok(()) => Ok(()),
            Err(_) => tokio::fs::copy(&source, &temp).await.map(|_| ()),
        };
        let result = match linked {
            Ok(()) => tokio::fs::rename(&temp, &target).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(self.io(format!("cannot place {}", target.display()), e));
        }
        Ok(true)
    }

    async fn delete_manifest(&self, repository: &str, digest: &str) -> Result<()> {
        self.counter.record(Method::Delete, Endpoint::Manifest);
        let path = self.blob_path(repository, digest)?;
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(RegistryError::NotFound {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                reference: digest.to_owned(),
            });
        }
        // Untag first: a tag never points at a deleted manifest.
        self.edit_index(repository, |list| {
            let before = list.len();
            list.retain(|item| item.get("digest").and_then(Value::as_str) != Some(digest));
            list.len() != before
        })
        .await?;
        tokio::fs::remove_file(&path)
            .await
            .map_err(|e| self.io(format!("cannot remove {}", path.display()), e))
    }

    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<TagDeletion> {
        self.counter.record(Method::Delete, Endpoint::Manifest);
        let removed = self
            .edit_index(repository, |list| {
                let before = list.len();
                list.retain(|item| ref_name(item) != Some(tag));
                list.len() != before
            })
            .await?;
        if removed {
            Ok(TagDeletion::Deleted)
        } else {
            Err(RegistryError::NotFound {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                reference: tag.to_owned(),
            })
        }
    }

    async fn remove_tag(&self, repository: &str, tag: &str) -> Result<()> {
        super::untag::remove_tag(self, repository, tag).await
    }

    async fn referrers(&self, repository: &str, digest: &str) -> Result<Vec<Descriptor>> {
        Ok(referrers::descriptors(
            self.referrer_details(repository, digest).await?,
        ))
    }

    async fn referrer_details(&self, repository: &str, digest: &str) -> Result<Vec<Referrer>> {
        let Some(tag) = referrers::fallback_tag(digest) else {
            return Ok(Vec::new());
        };
        match self.get_manifest(repository, &tag).await? {
            Some((_, bytes)) => {
                referrers::parse_listing(&bytes).map_err(|m| self.protocol(repository, &tag, m))
            }
            None => Ok(Vec::new()),
        }
    }

    async fn attach_referrer(
        &self,
        repository: &str,
        subject: &Descriptor,
        media_type: &str,
        manifest_bytes: Bytes,
    ) -> Result<String> {
        let entry = referrers::listing_entry(media_type, &manifest_bytes)
            .map_err(|m| self.protocol(repository, &subject.digest, m))?;
        let digest = sha256_digest(&manifest_bytes);
        self.put_manifest(repository, &digest, media_type, manifest_bytes)
            .await?;
        let tag = referrers::fallback_tag(&subject.digest).ok_or_else(|| {
            self.protocol(
                repository,
                &subject.digest,
                "subject digest is not sha256".into(),
            )
        })?;
        // The whole read-modify-write of the fallback index happens under the index lock.
        let lock = self.index_lock(&format!("{repository}#referrers"));
        let _guard = lock.lock().await;
        let existing = self.get_manifest(repository, &tag).await?;
        let updated = referrers::add_to_index(existing.as_ref().map(|(_, b)| b.as_ref()), entry)
            .map_err(|m| self.protocol(repository, &tag, m))?;
        if let Some(index) = updated {
            self.put_manifest(repository, &tag, manifest::OCI_INDEX, index)
                .await?;
        }
        Ok(digest)
    }

    async fn catalog(&self) -> Result<Vec<String>> {
        self.counter.record(Method::Get, Endpoint::Catalog);
        let mut repositories = Vec::new();
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
                continue;
            };
            while let Ok(Some(entry)) = entries.next_entry().await {
                let path = entry.path();
                if !entry.file_type().await.map(|t| t.is_dir()).unwrap_or(false)
                    || path.ends_with("blobs")
                {
                    continue;
                }
                if tokio::fs::try_exists(path.join("index.json"))
                    .await
                    .unwrap_or(false)
                    && let Ok(relative) = path.strip_prefix(&self.root)
                {
                    repositories.push(relative.to_string_lossy().replace('\\', "/"));
                }
                pending.push(path);
            }
        }
        repositories.sort();
        Ok(repositories)
    }

    fn request_stats(&self) -> RequestStats {
        self.counter.snapshot()
    }
}
