//! The distribution operations of a layout directory: tags from `index.json`, blobs and
//! manifests as content-addressed files, referrers through the fallback tag schema.

use super::*;

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
        crate::registry::untag::remove_tag(self, repository, tag).await
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
