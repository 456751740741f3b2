//! Seeds a registry with a plan-benchmark corpus for `scripts/bench-plan`: `--repos`
//! repositories (`<prefix>0000`, `<prefix>0001`, …) × `--tags` tags (`1.0.0`, `1.0.1`, …).
//!
//! The images are tiny and share everything but their manifest: one layer and one config per
//! repository, and an annotation naming the repository and tag, so every tag has its own
//! digest (as in real registries) while seeding costs one manifest PUT per tag.
//!
//!     cargo run --release --example seed_corpus -- --registry 127.0.0.1:5000 --repos 200 --tags 25

#[path = "../tests/support/images.rs"]
mod images;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use houba::config::{Credentials, RegistryEndpoint, RegistryEntry};
use houba::registry::{ConnectOptions, Registry, RegistryError, connect};
use images::{Blob, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use serde_json::json;

#[derive(Parser)]
struct Cli {
    /// `host:port` of a plain-HTTP registry.
    #[arg(long)]
    registry: String,
    #[arg(long, default_value_t = 200)]
    repos: usize,
    #[arg(long, default_value_t = 25)]
    tags: usize,
    /// Repository name prefix; a four-digit index is appended.
    #[arg(long, default_value = "library/r")]
    prefix: String,
    /// First repository index (to grow a corpus in steps).
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Concurrent requests.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// Repository name for an index.
fn repository(prefix: &str, index: usize) -> String {
    format!("{prefix}{index:04}")
}

fn shared_blobs() -> (Blob, Blob) {
    let layer = images::tar_layer(
        OCI_LAYER_GZIP,
        &[("etc/os-release", b"ID=houba-bench\n".as_slice())],
    );
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.clone().expect("tar layer")]},
    });
    let config = Blob::new(
        OCI_CONFIG,
        serde_json::to_vec(&config).expect("config JSON"),
    );
    (layer, config)
}

fn manifest(layer: &Blob, config: &Blob, repository: &str, tag: &str) -> Bytes {
    let d = |b: &Blob| {
        let d = b.descriptor();
        json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size})
    };
    Bytes::from(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": d(config),
            "layers": [d(layer)],
            "annotations": {"org.example.bench.ref": format!("{repository}:{tag}")},
        }))
        .expect("manifest JSON"),
    )
}

async fn seed_repository(
    registry: &dyn Registry,
    repository: &str,
    tags: usize,
    concurrency: usize,
    blobs: &(Blob, Blob),
) -> Result<(), RegistryError> {
    for blob in [&blobs.0, &blobs.1] {
        let d = blob.descriptor();
        if !registry.blob_exists(repository, &d.digest).await? {
            registry
                .put_blob(
                    repository,
                    &d.digest,
                    d.size,
                    images::once_stream(blob.bytes.clone()),
                )
                .await?;
        }
    }
    futures::stream::iter(0..tags)
        .map(|i| async move {
            let tag = format!("1.0.{i}");
            registry
                .put_manifest(
                    repository,
                    &tag,
                    OCI_MANIFEST,
                    manifest(&blobs.0, &blobs.1, repository, &tag),
                )
                .await
                .map(drop)
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let entry = RegistryEntry {
        name: cli.registry.clone(),
        endpoint: RegistryEndpoint::Http {
            host: cli.registry.clone(),
            prefix: None,
            tls_verify: false,
            ca_cert: None,
            credentials: Credentials::Ambient,
        },
        mirror_of: None,
        concurrency: cli.concurrency,
    };
    let registry: Arc<dyn Registry> = connect(&entry, &ConnectOptions::default())?;
    let blobs = shared_blobs();
    let started = Instant::now();
    let per_repo = (cli.concurrency / 4).max(1);
    futures::stream::iter(cli.first..cli.first + cli.repos)
        .map(|i| {
            let registry = registry.clone();
            let repo = repository(&cli.prefix, i);
            let blobs = &blobs;
            async move { seed_repository(registry.as_ref(), &repo, cli.tags, per_repo, blobs).await }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!(
        "seeded {} repositories x {} tags into {} in {:.1}s",
        cli.repos,
        cli.tags,
        cli.registry,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
