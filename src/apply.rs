//! Apply: carry out a plan, exactly, over the registries.
//!
//! Order and safety (see docs/architecture.md): placements first (blobs, then child manifests,
//! then the tagged manifest: the tag write is the commit point), then aliases, then prunes. A
//! failed action fails only what depends on it; everything else still runs, and re-running
//! converges because every decision is re-made from the live registries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use crate::observe::ManifestCache;
use crate::plan::model::{Action, Address, Build, Content, Operation, Place, Plan, PruneMode};
use crate::rebuild::BuilderEndpoint;
use crate::registry::stats::ActionTally;
use crate::registry::transfer::TransferSession;
use crate::registry::{Registries, Registry};
use crate::stamp::{self, Stamp};

mod report;

pub use report::{ActionResult, ApplyError, BlobCounts, Outcome, RunReport};

/// Reports progress of each action as it finishes (progress bars, events).
pub trait Progress: Send + Sync {
    /// An action starts.
    fn started(&self, action: &Action);
    /// An action ended (done, failed or skipped).
    fn finished(&self, result: &ActionResult);
}

/// What an apply works with, beside the plan.
pub struct ApplyContext<'a> {
    /// The registry pool.
    pub registries: &'a Registries,
    /// The content-addressed manifest cache (apply puts what it writes in it).
    pub cache: &'a ManifestCache,
    /// Blobs moved this run, shared by every action.
    pub session: Arc<TransferSession>,
    /// Key prefix of houba's own stamp keys.
    pub label_prefix: &'a str,
    /// The CA certificate and package-mirror rosters rebuilds use.
    pub rosters: &'a crate::build::TransformRosters,
    /// Actions run at once, at most.
    pub concurrency: usize,
    /// Told of every action's start and end.
    pub progress: &'a dyn Progress,
    /// SBOMs, signatures and upstream referrers attached after each placement.
    pub evidence: &'a crate::evidence::runtime::EvidenceRuntime,
}

/// Execute every action of the plan in dependency order.
pub async fn apply(plan: &Plan, ctx: &ApplyContext<'_>) -> RunReport {
    let started = Instant::now();
    let mut results: Vec<ActionResult> = Vec::new();
    let mut failed: BTreeSet<Address> = BTreeSet::new();
    for phase in 0..=2u8 {
        let batch: Vec<&Action> = plan
            .actions
            .iter()
            .filter(|a| a.kind().phase() == phase)
            .collect();
        let failed_now = &failed;
        let phase_results: Vec<ActionResult> = stream::iter(batch)
            .map(|a| async move {
                if let Some(dep) = a.header.depends_on.iter().find(|d| failed_now.contains(*d)) {
                    let r = ActionResult {
                        address: a.header.address.clone(),
                        action: a.kind(),
                        outcome: Outcome::Skipped,
                        digest: None,
                        error: Some(format!("not attempted: {dep} failed")),
                        transient: false,
                        seconds: 0.0,
                        requests: 0,
                        bytes: 0,
                        blobs: BlobCounts::default(),
                    };
                    ctx.progress.finished(&r);
                    return r;
                }
                ctx.progress.started(a);
                let t = Instant::now();
                let tally = Arc::new(ActionTally::default());
                let mut res = ActionTally::scope(tally.clone(), execute(a, ctx)).await;
                // Only a registry's answer can change on a second attempt; a refusal (the tag
                // moved since planning) or a stamp error would only be repeated.
                let retryable = matches!(
                    res,
                    Err(ApplyError::Registry(_) | ApplyError::Rebuild { .. })
                );
                if retryable && a.kind().phase() == 0 {
                    res = retry_placement(a, ctx, &tally, res).await;
                }
                let r = ActionResult {
                    address: a.header.address.clone(),
                    action: a.kind(),
                    outcome: if res.is_ok() {
                        Outcome::Done
                    } else {
                        Outcome::Failed
                    },
                    digest: res.as_ref().ok().cloned().flatten(),
                    transient: res.as_ref().err().is_some_and(ApplyError::is_transient),
                    error: res.err().map(|e| e.to_string()),
                    seconds: t.elapsed().as_secs_f64(),
                    requests: tally.requests.load(Ordering::Relaxed),
                    bytes: tally.written_bytes.load(Ordering::Relaxed),
                    blobs: {
                        let (uploaded, mounted, present) = tally.blobs();
                        BlobCounts {
                            uploaded,
                            mounted,
                            present,
                        }
                    },
                };
                ctx.progress.finished(&r);
                r
            })
            .buffer_unordered(ctx.concurrency.max(1))
            .collect()
            .await;
        for r in &phase_results {
            if r.outcome != Outcome::Done {
                failed.insert(r.address.clone());
            }
        }
        results.extend(phase_results);
    }
    let order: BTreeMap<&Address, usize> = plan
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| (&a.header.address, i))
        .collect();
    results.sort_by_key(|r| order.get(&r.address).copied().unwrap_or(usize::MAX));
    // The totals are the actions' own counts, so they add up to the lines above them, also
    // when a placement was tried again (in a fresh session, whose counters are not the run's).
    let total = |f: fn(&BlobCounts) -> u64| results.iter().map(|r| f(&r.blobs)).sum::<u64>();
    let (blobs_uploaded, blobs_mounted, blobs_skipped) = (
        total(|b| b.uploaded),
        total(|b| b.mounted),
        total(|b| b.present),
    );
    let bytes_uploaded = ctx.session.stats().bytes_uploaded;
    RunReport {
        results,
        blobs_uploaded,
        blobs_mounted,
        blobs_skipped,
        bytes_uploaded,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// A placement that failed is tried once more, from scratch, after a short pause. Another
/// writer (a second apply sharing no lock with this one, on another machine) may have been
/// uploading the same blobs at the same moment, and registries answer such races with
/// `MANIFEST_BLOB_UNKNOWN` or `DIGEST_INVALID`; every write is content-addressed and the tag
/// write comes last, so a second attempt is safe and sees the other writer's complete blobs.
async fn retry_placement(
    a: &Action,
    ctx: &ApplyContext<'_>,
    tally: &Arc<ActionTally>,
    first: Result<Option<String>, ApplyError>,
) -> Result<Option<String>, ApplyError> {
    let error = first
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    tracing::info!(address = %a.address(), %error, "placement failed; trying once more from scratch");
    tokio::time::sleep(std::time::Duration::from_millis(
        300 + rand::random_range(0..400),
    ))
    .await;
    let fresh = ApplyContext {
        session: Arc::new(TransferSession::new(16)),
        ..*ctx
    };
    // The second attempt finds what the first placed: its blobs are counted once, by it.
    tally.reset_blobs();
    match ActionTally::scope(tally.clone(), execute(a, &fresh)).await {
        Ok(d) => Ok(d),
        // The first error says what went wrong; the second usually repeats it.
        Err(_) => first,
    }
}

/// Run one action. `Ok(Some(digest))`: what the tag holds now.
async fn execute(a: &Action, ctx: &ApplyContext<'_>) -> Result<Option<String>, ApplyError> {
    let dst = ctx
        .registries
        .destination(&a.header.destination.registry)
        .map_err(ApplyError::from)?;
    match &a.operation {
        Operation::Place(place) | Operation::Replace { place, .. } => {
            let digest = match &place.content {
                Content::Copy => place_copy(a, place, ctx, dst.as_ref()).await?,
                Content::Build(build) => place_build(a, place, build, ctx, dst.as_ref()).await?,
            };
            complete_evidence(a, Some(place), &digest, ctx, dst.as_ref()).await?;
            Ok(Some(digest))
        }
        Operation::Restamp { annotations, .. } => {
            let digest = restamp(a, annotations, ctx, dst.as_ref()).await?;
            complete_evidence(a, None, &digest, ctx, dst.as_ref()).await?;
            Ok(Some(digest))
        }
        Operation::Attach => {
            let digest = a
                .header
                .before
                .clone()
                .ok_or("attach without a live digest")?;
            complete_evidence(a, None, &digest, ctx, dst.as_ref()).await?;
            Ok(Some(digest))
        }
        Operation::Alias {
            target_tag,
            target_digest,
            ..
        } => alias(a, target_tag, target_digest.as_deref(), ctx, dst.as_ref())
            .await
            .map(Some),
        Operation::Prune { mode, .. } => prune(a, *mode, ctx, dst.as_ref()).await.map(|()| None),
    }
}

async fn source_manifest(
    place: &Place,
    ctx: &ApplyContext<'_>,
) -> Result<(Arc<dyn Registry>, Bytes, String), ApplyError> {
    let src_loc = &place.source.location;
    let digest = &place.source.digest;
    let src = ctx
        .registries
        .source(&src_loc.registry)
        .map_err(ApplyError::from)?;
    let bytes = match ctx.cache.get(digest) {
        Some(b) => b,
        None => {
            let (_, b) = src
                .get_manifest(&src_loc.repository, digest)
                .await
                .map_err(ApplyError::from)?
                .ok_or_else(|| format!("{src_loc}: upstream manifest {digest} is gone"))?;
            ctx.cache.put(digest, &b);
            b
        }
    };
    let media_type = stamp::manifest_media_type(&bytes, &place.source.media_type);
    Ok((src, bytes, media_type))
}

async fn place_copy(
    a: &Action,
    place: &Place,
    ctx: &ApplyContext<'_>,
    dst: &dyn Registry,
) -> Result<String, ApplyError> {
    let destination = &a.header.destination;
    let (src, bytes, media_type) = source_manifest(place, ctx).await?;
    let stamped = stamp::stamp_manifest(&bytes, &media_type, &place.annotations, ctx.label_prefix)
        .map_err(|e| format!("{destination}: {e}"))?;
    if let Some(expected) = &a.header.after
        && expected != &stamped.digest
    {
        return Err(format!(
            "{destination}: the stamped manifest would be {} but the plan expected {expected}; plan again",
            stamped.digest
        )
        .into());
    }
    ctx.session
        .copy(
            src.as_ref(),
            &place.source.location.repository,
            &place.source.digest,
            dst,
            &destination.repository,
            &destination.tag,
            Some((
                stamped.media_type.clone(),
                Bytes::from(stamped.bytes.clone()),
            )),
        )
        .await
        .map_err(ApplyError::from)?;
    ctx.cache.put(&stamped.digest, &stamped.bytes);
    Ok(stamped.digest)
}

async fn place_build(
    a: &Action,
    place: &Place,
    build: &Build,
    ctx: &ApplyContext<'_>,
    dst: &dyn Registry,
) -> Result<String, ApplyError> {
    let destination = &a.header.destination;
    let (src, bytes, media_type) = source_manifest(place, ctx).await?;
    let request = crate::rebuild::RebuildRequest {
        label: place.source.location.to_string(),
        source: src,
        source_repository: &place.source.location.repository,
        manifest: bytes,
        media_type,
        steps: &build.steps,
        platforms: &build.platforms,
        rosters: ctx.rosters,
        annotations: &place.annotations,
        label_prefix: ctx.label_prefix,
    };
    if build.steps.iter().any(|s| s.runs_command()) {
        return place_dockerfile_build(a, place, ctx, dst, request).await;
    }
    let (digest, bytes) = crate::rebuild::rebuild_and_place(
        request,
        &ctx.session,
        dst,
        &destination.repository,
        &destination.tag,
    )
    .await
    .map_err(|error| ApplyError::Rebuild {
        at: destination.to_string(),
        error,
    })?;
    // What apply wrote, the next plan need not read back.
    ctx.cache.put(&digest, &bytes);
    Ok(digest)
}

/// A build whose steps run commands: through the Dockerfile backend and an external builder.
async fn place_dockerfile_build(
    a: &Action,
    place: &Place,
    ctx: &ApplyContext<'_>,
    dst: &dyn Registry,
    request: crate::rebuild::RebuildRequest<'_>,
) -> Result<String, ApplyError> {
    let at = &a.header.destination;
    let builder = ctx.registries.builders().choose().ok_or_else(|| {
        format!(
            "{at}: a `run` step needs an image builder: install buildah (apt-get install buildah) or set BUILDKIT_HOST"
        )
    })?;
    let source = BuilderEndpoint::of(&ctx.registries.source_entry(&place.source.location.registry))
        .map_err(|e| format!("{at}: {e}"))?;
    let dst_entry = ctx
        .registries
        .destination_entry(&at.registry)
        .ok_or_else(|| format!("{at}: registry not in the roster"))?;
    let destination = BuilderEndpoint::of(dst_entry).map_err(|e| format!("{at}: {e}"))?;
    let (digest, bytes) = crate::rebuild::build_dockerfile_and_place(
        request,
        &builder,
        &source,
        &destination,
        dst,
        &at.repository,
        &at.tag,
    )
    .await
    .map_err(|error| ApplyError::Rebuild {
        at: at.to_string(),
        error,
    })?;
    ctx.cache.put(&digest, &bytes);
    Ok(digest)
}

/// The live manifest bytes a tag held when planning (cache first, else GET by digest).
async fn live_manifest(
    a: &Action,
    ctx: &ApplyContext<'_>,
    dst: &dyn Registry,
    digest: &str,
) -> Result<Bytes, ApplyError> {
    if let Some(b) = ctx.cache.get(digest) {
        return Ok(b);
    }
    let (_, b) = dst
        .get_manifest(&a.header.destination.repository, digest)
        .await
        .map_err(ApplyError::from)?
        .ok_or_else(|| {
            format!(
                "{}: manifest {digest} is gone; plan again",
                a.header.destination
            )
        })?;
    ctx.cache.put(digest, &b);
    Ok(b)
}

/// Rewrite only the top manifest's annotations: no blob moves.
async fn restamp(
    a: &Action,
    annotations_wanted: &BTreeMap<String, String>,
    ctx: &ApplyContext<'_>,
    dst: &dyn Registry,
) -> Result<String, ApplyError> {
    let destination = &a.header.destination;
    let before = a
        .header
        .before
        .as_deref()
        .ok_or("restamp without a live digest")?;
    let live = live_manifest(a, ctx, dst, before).await?;
    let annotations = stamp::manifest_annotations(&live).map_err(ApplyError::from)?;
    let live_prefix = Stamp::detect(&annotations, ctx.label_prefix)
        .map(|(_, p)| p)
        .unwrap_or_else(|| ctx.label_prefix.to_string());
    let out = stamp::restamp_manifest(
        &live,
        "",
        annotations_wanted,
        &[ctx.label_prefix, live_prefix.as_str()],
    )
    .map_err(|e| format!("{destination}: {e}"))?;
    dst.put_manifest(
        &destination.repository,
        &destination.tag,
        &out.media_type,
        Bytes::from(out.bytes.clone()),
    )
    .await
    .map_err(ApplyError::from)?;
    ctx.cache.put(&out.digest, &out.bytes);
    Ok(out.digest)
}

/// After the tag write: the upstream's evidence travels (placements) and the placed digest
/// gets what it lacks. Nothing to do when the plan lists no evidence for the action.
async fn complete_evidence(
    a: &Action,
    place: Option<&Place>,
    digest: &str,
    ctx: &ApplyContext<'_>,
    dst: &dyn Registry,
) -> Result<(), ApplyError> {
    use crate::evidence::runtime::{PlacedAt, UpstreamSource};
    let evidence = &a.header.evidence;
    if evidence.is_empty() {
        return Ok(());
    }
    let destination = &a.header.destination;
    let bytes = live_manifest(a, ctx, dst, digest).await?;
    let placed = PlacedAt {
        registry: dst,
        registry_key: &destination.registry,
        display: &destination.display,
        repository: &destination.repository,
        descriptor: crate::registry::Descriptor {
            media_type: stamp::manifest_media_type(&bytes, ""),
            digest: digest.to_owned(),
            size: bytes.len() as u64,
        },
        bytes,
    };
    let upstream = match place {
        Some(place) if evidence.upstream > 0 => {
            let (src, bytes, media_type) = source_manifest(place, ctx).await?;
            Some((src, bytes, media_type))
        }
        _ => None,
    };
    let upstream = upstream
        .as_ref()
        .zip(place)
        .map(|((src, bytes, media_type), place)| UpstreamSource {
            registry: src.as_ref(),
            repository: &place.source.location.repository,
            descriptor: crate::registry::Descriptor {
                media_type: media_type.clone(),
                digest: place.source.digest.clone(),
                size: bytes.len() as u64,
            },
            bytes: bytes.clone(),
        });
    let first = ctx
        .evidence
        .complete(&ctx.session, &placed, upstream.as_ref())
        .await;
    match first {
        // Two applies attaching to one digest at once (no shared lock) race on the fallback
        // index, and distribution answers such races with `MANIFEST_BLOB_UNKNOWN` or
        // `DIGEST_INVALID`. Evidence is deterministic and every write is content-addressed, so
        // one more attempt, which reads the index again, converges.
        Err(e)
            if matches!(
                e.error,
                crate::evidence::collect::EvidenceError::Registry(_)
            ) =>
        {
            tracing::info!(at = %e.at, error = %e.error, "attaching evidence failed; trying once more");
            tokio::time::sleep(std::time::Duration::from_millis(
                300 + rand::random_range(0..400),
            ))
            .await;
            ctx.evidence
                .complete(&ctx.session, &placed, upstream.as_ref())
                .await
                .map_err(ApplyError::from)
        }
        other => other.map_err(ApplyError::from),
    }
}

/// Point a moving tag at its target placement's manifest.
async fn alias(
    a: &Action,
    target_tag: &str,
    target_digest: Option<&str>,
    ctx: &ApplyContext<'_>,
    dst: &dyn Registry,
) -> Result<String, ApplyError> {
    let destination = &a.header.destination;
    // The target's digest: planned when known, else read now (a build placed earlier in this
    // run, which this action depends on).
    let digest = match target_digest {
        Some(d) => d.to_string(),
        None => {
            dst.head_manifest(&destination.repository, target_tag)
                .await
                .map_err(ApplyError::from)?
                .ok_or_else(|| format!("{destination}: target tag {target_tag} is absent"))?
                .digest
        }
    };
    let bytes = live_manifest(a, ctx, dst, &digest).await?;
    let media_type = stamp::manifest_media_type(&bytes, stamp::OCI_MANIFEST);
    dst.put_manifest(
        &destination.repository,
        &destination.tag,
        &media_type,
        bytes,
    )
    .await
    .map_err(ApplyError::from)?;
    Ok(digest)
}

async fn prune(
    a: &Action,
    mode: PruneMode,
    ctx: &ApplyContext<'_>,
    dst: &dyn Registry,
) -> Result<(), ApplyError> {
    let destination = &a.header.destination;
    let repo = &destination.repository;
    let tag = &destination.tag;
    let planned = a.header.before.as_ref();
    // Never touch a tag that moved since planning.
    let now = dst
        .head_manifest(repo, tag)
        .await
        .map_err(ApplyError::from)?;
    if now.as_ref().map(|d| &d.digest) != planned {
        return Err(format!(
            "{destination}: the tag moved since planning ({} -> {}); not pruned, plan again",
            planned.map_or("absent", String::as_str),
            now.map(|d| d.digest).unwrap_or_else(|| "absent".into())
        )
        .into());
    }
    match mode {
        PruneMode::Mark => {
            let before = planned.ok_or("prune without a live digest")?;
            let live = live_manifest(a, ctx, dst, before).await?;
            let annotations = stamp::manifest_annotations(&live).map_err(ApplyError::from)?;
            let (mut s, p) = Stamp::detect(&annotations, ctx.label_prefix)
                .ok_or_else(|| format!("{destination}: not stamped; houba never prunes it"))?;
            s.pruned = true;
            let out = stamp::restamp_manifest(&live, "", &s.to_annotations(&p), &[p.as_str()])
                .map_err(ApplyError::from)?;
            dst.put_manifest(repo, tag, &out.media_type, Bytes::from(out.bytes.clone()))
                .await
                .map_err(ApplyError::from)?;
            ctx.cache.put(&out.digest, &out.bytes);
            Ok(())
        }
        PruneMode::Delete => dst.remove_tag(repo, tag).await.map_err(ApplyError::from),
    }
}

#[cfg(test)]
mod tests;
