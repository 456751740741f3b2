//! The `Registry` operations of the HTTP backend, on top of `HttpRegistry::send`.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};

use super::digest::{self, BlobLocation, is_digest, sha256_digest};
use super::http::{Body, Call, HttpRegistry, next_link, snippet};
use super::{
    ByteStream, Descriptor, MANIFEST_MEDIA_TYPES, Referrer, Registry, RegistryError, RequestStats,
    Result, TagDeletion, manifest, referrers,
};

/// Stop paginating after this many pages: a server that keeps inventing pages is broken.
const MAX_PAGES: usize = 10_000;
const PAGE_SIZE: usize = 1000;

impl HttpRegistry {
    fn manifest_call(
        &self,
        method: Method,
        repository: &str,
        reference: &str,
        actions: &str,
    ) -> Call {
        Call::new(
            method,
            self.url(repository, &format!("manifests/{reference}")),
        )
        .scopes(vec![self.scope(repository, actions)])
        .header(header::ACCEPT, &MANIFEST_MEDIA_TYPES.join(", "))
    }

    async fn unexpected(
        &self,
        repository: &str,
        reference: &str,
        what: &str,
        response: reqwest::Response,
    ) -> RegistryError {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        self.protocol(
            repository,
            reference,
            format!("{what}: unexpected answer {status}: {}", snippet(&body)),
        )
    }

    /// Follow `Link` pages of a listing, collecting `key` (tags or repositories). Servers that
    /// ignore `n`/`last` answer the same page again: a page that brings nothing new ends it.
    async fn paginate(
        &self,
        first_url: String,
        key: &str,
        repository: &str,
        scopes: Vec<String>,
    ) -> Result<Option<Vec<String>>> {
        let mut seen = BTreeSet::new();
        let mut url = first_url;
        for _ in 0..MAX_PAGES {
            let response = self
                .send(Call::new(Method::GET, url.clone()).scopes(scopes.clone()))
                .await?;
            match response.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND if seen.is_empty() => return Ok(None),
                _ => return Err(self.unexpected(repository, key, "listing", response).await),
            }
            let next = next_link(response.headers());
            let body = response
                .bytes()
                .await
                .map_err(|e| RegistryError::Transport {
                    registry: self.name.clone(),
                    message: format!(
                        "GET {}: {}",
                        super::http::request_path(&url),
                        super::auth::without_url(e)
                    ),
                })?;
            let items = super::http::parse_listing(&body).map_err(|m| {
                self.protocol(repository, key, format!("unreadable {key} listing: {m}"))
            })?;
            let before = seen.len();
            seen.extend(items);
            if seen.len() == before {
                break;
            }
            match next {
                Some(next) => url = self.resolve(&next),
                None => break,
            }
        }
        Ok(Some(seen.into_iter().collect()))
    }

    /// PUT manifest bytes; also reports whether the server indexed a `subject` (OCI-Subject).
    async fn put_manifest_raw(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(String, bool)> {
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
        let call = self
            .manifest_call(Method::PUT, repository, reference, "pull,push")
            .header(header::CONTENT_TYPE, media_type)
            .body(Body::Bytes(bytes));
        // A tag write rewrites a tag link: never while a manifest delete walks them.
        let lock = (!is_digest(reference)).then(|| self.repository_locks.of(repository));
        let _shared = match &lock {
            Some(lock) => Some(lock.links.read().await),
            None => None,
        };
        let response = self.send(call).await?;
        if response.status().is_success() {
            Ok((digest, response.headers().contains_key("oci-subject")))
        } else {
            Err(self
                .unexpected(repository, reference, "manifest upload", response)
                .await)
        }
    }

    /// Whether the referrers API answers (probed once per registry, or known from a listing).
    async fn has_referrers_api(&self, repository: &str, digest: &str) -> Result<bool> {
        if let Some(known) = self.referrers_api.get() {
            return Ok(*known);
        }
        // A listing probes and remembers; an answer that told nothing (an unknown
        // repository) leaves the fallback index to maintain.
        self.referrer_details(repository, digest).await?;
        Ok(self.referrers_api.get().copied().unwrap_or(false))
    }

    /// Whether this client saw `digest` in `repository` already (uploaded it, or a HEAD found
    /// it): houba deletes no blobs, so within one run the answer cannot change.
    fn blob_known(&self, repository: &str, digest: &str) -> bool {
        self.known_blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(repository.to_owned(), digest.to_owned()))
    }

    fn remember_blob(&self, repository: &str, digest: &str) {
        self.known_blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((repository.to_owned(), digest.to_owned()));
    }

    /// The referrers listed by the fallback index of `digest`.
    async fn fallback_listing(&self, repository: &str, digest: &str) -> Result<Option<Bytes>> {
        let Some(tag) = referrers::fallback_tag(digest) else {
            return Ok(None);
        };
        Ok(self.get_manifest(repository, &tag).await?.map(|(_, b)| b))
    }

    /// The fallback-index lock of one subject in one repository: concurrent attaches to the
    /// same subject must not lose each other's entries; different subjects do not wait.
    fn fallback_lock(&self, repository: &str, tag: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .fallback_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        locks
            .entry(format!("{repository}:{tag}"))
            .or_default()
            .clone()
    }

    fn referrers_call(&self, repository: &str, digest: &str) -> Call {
        Call::new(
            Method::GET,
            self.url(repository, &format!("referrers/{digest}")),
        )
        .scopes(vec![self.scope(repository, "pull")])
        .header(header::ACCEPT, manifest::OCI_INDEX)
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[async_trait::async_trait]
impl Registry for HttpRegistry {
    fn display_name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        let url = self.url(repository, &format!("tags/list?n={PAGE_SIZE}"));
        let scopes = vec![self.scope(repository, "pull")];
        Ok(self
            .paginate(url, "tags", repository, scopes)
            .await?
            .unwrap_or_default())
    }

    async fn head_manifest(&self, repository: &str, reference: &str) -> Result<Option<Descriptor>> {
        let response = self
            .send(self.manifest_call(Method::HEAD, repository, reference, "pull"))
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => {
                return Err(self
                    .unexpected(repository, reference, "manifest HEAD", response)
                    .await);
            }
        }
        let headers = response.headers();
        let media_type = header_str(headers, "content-type").map(str::to_owned);
        let size = header_str(headers, "content-length").and_then(|s| s.parse::<u64>().ok());
        match (
            header_str(headers, "docker-content-digest"),
            media_type,
            size,
        ) {
            (Some(digest), Some(media_type), Some(size))
                if digest::sha256_hex(digest).is_some() =>
            {
                Ok(Some(Descriptor {
                    media_type,
                    digest: digest.to_owned(),
                    size,
                }))
            }
            // The server did not say everything: read the manifest itself.
            _ => Ok(self
                .get_manifest(repository, reference)
                .await?
                .map(|(d, _)| d)),
        }
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<(Descriptor, Bytes)>> {
        let response = self
            .send(self.manifest_call(Method::GET, repository, reference, "pull"))
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => {
                return Err(self
                    .unexpected(repository, reference, "manifest GET", response)
                    .await);
            }
        }
        let reported = header_str(response.headers(), "content-type")
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RegistryError::Transport {
                registry: self.name.clone(),
                message: format!(
                    "GET {}: {}",
                    super::http::request_path(
                        &self.url(repository, &format!("manifests/{reference}"))
                    ),
                    super::auth::without_url(e)
                ),
            })?;
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
        let media_type = match manifest::parse(&bytes) {
            Ok(value) => manifest::media_type_of(&value, &reported),
            Err(_) => reported,
        };
        Ok(Some((
            Descriptor {
                media_type,
                digest,
                size: bytes.len() as u64,
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
        Ok(self
            .put_manifest_raw(repository, reference, media_type, bytes)
            .await?
            .0)
    }

    async fn blob_exists(&self, repository: &str, digest: &str) -> Result<bool> {
        if self.blob_known(repository, digest) {
            return Ok(true);
        }
        let call = Call::new(
            Method::HEAD,
            self.url(repository, &format!("blobs/{digest}")),
        )
        .scopes(vec![self.scope(repository, "pull")]);
        let response = self.send(call).await?;
        match response.status() {
            StatusCode::OK => {
                self.remember_blob(repository, digest);
                Ok(true)
            }
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self
                .unexpected(repository, digest, "blob HEAD", response)
                .await),
        }
    }

    async fn get_blob(&self, repository: &str, digest: &str) -> Result<ByteStream> {
        let call = Call::new(
            Method::GET,
            self.url(repository, &format!("blobs/{digest}")),
        )
        .scopes(vec![self.scope(repository, "pull")])
        .bulk();
        let response = self.send(call).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(self.not_found(repository, digest)),
            _ => {
                return Err(self
                    .unexpected(repository, digest, "blob GET", response)
                    .await);
            }
        }
        let registry = self.name.clone();
        let context = format!(
            "GET {}",
            super::http::request_path(&self.url(repository, &format!("blobs/{digest}")))
        );
        let stream = response
            .bytes_stream()
            .map_err(move |e| RegistryError::Transport {
                registry: registry.clone(),
                message: format!("{context}: {}", super::auth::without_url(e)),
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
        data: ByteStream,
    ) -> Result<()> {
        let scopes = vec![self.scope(repository, "pull,push")];
        let start =
            Call::new(Method::POST, self.url(repository, "blobs/uploads/")).scopes(scopes.clone());
        let response = self.send(start).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self
                .unexpected(repository, digest, "blob upload start", response)
                .await);
        }
        let Some(location) = header_str(response.headers(), "location") else {
            return Err(self.protocol(repository, digest, "blob upload start: no Location".into()));
        };
        let mut url = self.resolve(location);
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("digest=");
        url.push_str(digest);
        // One streaming PUT: the body flows from the source without being held in memory.
        let finish = Call::new(Method::PUT, url)
            .scopes(scopes)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::Stream(data, size))
            .bulk();
        let response = self.send(finish).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => {
                self.remember_blob(repository, digest);
                Ok(())
            }
            StatusCode::BAD_REQUEST => {
                let body = response.text().await.unwrap_or_default();
                Err(self.protocol(
                    repository,
                    digest,
                    format!("blob upload rejected: {}", snippet(&body)),
                ))
            }
            _ => Err(self
                .unexpected(repository, digest, "blob upload", response)
                .await),
        }
    }

    async fn mount_blob(
        &self,
        repository: &str,
        from_repository: &str,
        digest: &str,
    ) -> Result<bool> {
        let url = self.url(
            repository,
            &format!(
                "blobs/uploads/?mount={digest}&from={}",
                self.full_repository(from_repository)
            ),
        );
        // One token carrying both scopes: push to the target, pull from the source.
        let scopes = vec![
            self.scope(repository, "pull,push"),
            self.scope(from_repository, "pull"),
        ];
        let response = self
            .send(Call::new(Method::POST, url).scopes(scopes))
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => Ok(false),
            _ => Err(self
                .unexpected(repository, digest, "blob mount", response)
                .await),
        }
    }

    async fn delete_manifest(&self, repository: &str, digest: &str) -> Result<()> {
        // distribution walks every tag link of the repository during a manifest delete and
        // fails half-way when one is rewritten meanwhile: no tag write runs alongside.
        let lock = self.repository_locks.of(repository);
        let _alone = lock.links.write().await;
        let response = self
            .send(self.manifest_call(Method::DELETE, repository, digest, "pull,push,delete"))
            .await?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::NOT_FOUND => Err(self.not_found(repository, digest)),
            StatusCode::METHOD_NOT_ALLOWED => Err(RegistryError::Unsupported {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                reference: digest.to_owned(),
                operation: "deleting manifests (enable deletes on the registry)".into(),
            }),
            _ => Err(self
                .unexpected(repository, digest, "manifest DELETE", response)
                .await),
        }
    }

    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<TagDeletion> {
        let response = self
            .send(self.manifest_call(Method::DELETE, repository, tag, "pull,push,delete"))
            .await?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => {
                Ok(TagDeletion::Deleted)
            }
            StatusCode::NOT_FOUND => Err(self.not_found(repository, tag)),
            // distribution 2.x answers 400 (unsupported / digest invalid), others 405.
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => {
                Ok(TagDeletion::Unsupported)
            }
            _ => Err(self
                .unexpected(repository, tag, "tag DELETE", response)
                .await),
        }
    }

    async fn remove_tag(&self, repository: &str, tag: &str) -> Result<()> {
        let lock = self.repository_locks.of(repository);
        let _one_at_a_time = lock.untag.lock().await;
        super::untag::remove_tag(self, repository, tag).await
    }

    async fn referrers(&self, repository: &str, digest: &str) -> Result<Vec<Descriptor>> {
        Ok(referrers::descriptors(
            self.referrer_details(repository, digest).await?,
        ))
    }

    async fn referrer_details(&self, repository: &str, digest: &str) -> Result<Vec<Referrer>> {
        // A registry without the API answers every listing the same way: once seen, the
        // fallback index is read directly (one request per listing instead of two).
        // Until an answer has told, listings go one at a time, so a burst of them costs one
        // probe, not one per listing in flight.
        let _probing = match self.referrers_api.get() {
            Some(false) => {
                return match self.fallback_listing(repository, digest).await? {
                    Some(bytes) => referrers::parse_listing(&bytes)
                        .map_err(|m| self.protocol(repository, digest, m)),
                    None => Ok(Vec::new()),
                };
            }
            Some(true) => None,
            None => {
                let probing = self.referrers_probe.lock().await;
                if self.referrers_api.get().is_some() {
                    drop(probing);
                    return self.referrer_details(repository, digest).await;
                }
                Some(probing)
            }
        };
        let response = self.send(self.referrers_call(repository, digest)).await?;
        let status = response.status();
        if status == StatusCode::OK {
            let _ = self.referrers_api.set(true);
        }
        let bytes = match status {
            StatusCode::OK => response
                .bytes()
                .await
                .map_err(|e| RegistryError::Transport {
                    registry: self.name.clone(),
                    message: format!(
                        "GET {}: {}",
                        super::http::request_path(
                            &self.url(repository, &format!("referrers/{digest}"))
                        ),
                        super::auth::without_url(e)
                    ),
                })?,
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => {
                // A registry with the API never answers 404 for a repository it has (OCI
                // distribution 1.1), but may for one it lacks (`NAME_UNKNOWN`): only an
                // answer that is not about the repository says the API is absent.
                let body = response.bytes().await.unwrap_or_default();
                if !referrers::names_unknown_repository(&body) {
                    let _ = self.referrers_api.set(false);
                }
                match self.fallback_listing(repository, digest).await? {
                    Some(bytes) => bytes,
                    None => return Ok(Vec::new()),
                }
            }
            _ => {
                return Err(self
                    .unexpected(repository, digest, "referrers", response)
                    .await);
            }
        };
        referrers::parse_listing(&bytes).map_err(|m| self.protocol(repository, digest, m))
    }

    async fn attach_referrer(
        &self,
        repository: &str,
        subject: &Descriptor,
        media_type: &str,
        manifest: Bytes,
    ) -> Result<String> {
        let mut digests = self
            .attach_referrers(repository, subject, vec![(media_type.to_owned(), manifest)])
            .await?;
        Ok(digests.remove(0))
    }

    async fn attach_referrers(
        &self,
        repository: &str,
        subject: &Descriptor,
        manifests: Vec<(String, Bytes)>,
    ) -> Result<Vec<String>> {
        let mut entries = Vec::with_capacity(manifests.len());
        for (media_type, manifest) in &manifests {
            entries.push(
                referrers::listing_entry(media_type, manifest)
                    .map_err(|m| self.protocol(repository, &subject.digest, m))?,
            );
        }
        let written = futures::future::try_join_all(manifests.into_iter().map(
            |(media_type, manifest)| async move {
                let digest = sha256_digest(&manifest);
                self.put_manifest_raw(repository, &digest, &media_type, manifest)
                    .await
            },
        ))
        .await?;
        let indexed = written.iter().all(|(_, indexed)| *indexed);
        let digests: Vec<String> = written.into_iter().map(|(d, _)| d).collect();
        if digests.is_empty()
            || indexed
            || self.has_referrers_api(repository, &subject.digest).await?
        {
            return Ok(digests);
        }
        let tag = referrers::fallback_tag(&subject.digest).ok_or_else(|| {
            self.protocol(
                repository,
                &subject.digest,
                "subject digest is not sha256".into(),
            )
        })?;
        // One read-modify-write of the subject's fallback index for the whole batch.
        let lock = self.fallback_lock(repository, &tag);
        let _serialised = lock.lock().await;
        let existing = self.get_manifest(repository, &tag).await?;
        let updated =
            referrers::add_all_to_index(existing.as_ref().map(|(_, b)| b.as_ref()), entries)
                .map_err(|m| self.protocol(repository, &tag, m))?;
        if let Some(index) = updated {
            self.put_manifest(repository, &tag, manifest::OCI_INDEX, index)
                .await?;
        }
        Ok(digests)
    }

    async fn catalog(&self) -> Result<Vec<String>> {
        let url = self.root_url(&format!("_catalog?n={PAGE_SIZE}"));
        let repositories = self
            .paginate(
                url,
                "repositories",
                "_catalog",
                vec!["registry:catalog:*".to_owned()],
            )
            .await?
            .unwrap_or_default();
        Ok(repositories
            .iter()
            .filter_map(|r| self.relative_repository(r).map(str::to_owned))
            .collect())
    }

    fn referrers_api(&self) -> Option<bool> {
        self.referrers_api.get().copied()
    }

    fn request_stats(&self) -> RequestStats {
        self.counter.snapshot()
    }

    fn traffic_stats(&self) -> super::stats::TrafficStats {
        self.counter.traffic()
    }
}
