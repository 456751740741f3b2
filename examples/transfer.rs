//! Drives houba's transfer engine for `scripts/bench-transfer`.
//!
//! - `seed`: push a deterministic corpus (repositories × tags, shared base layers, some
//!   multi-arch indexes) to a registry.
//! - `big-blob`: push an image with one large layer generated from a deterministic stream
//!   (never held in memory).
//! - `copy`: copy every tag of every repository (or of `--only` ones) from one registry to
//!   another with one `TransferSession`, and print timings and counters.

#[path = "../tests/support/images.rs"]
mod images;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};
use houba::config::{Credentials, RegistryEndpoint, RegistryEntry};
use houba::registry::transfer::TransferSession;
use houba::registry::{ByteStream, ConnectOptions, Registry, connect};
use images::{OCI_INDEX, OCI_LAYER_GZIP};
use sha2::{Digest, Sha256};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Seed {
        #[arg(long)]
        registry: String,
        #[arg(long, default_value_t = 20)]
        repos: usize,
        #[arg(long, default_value_t = 10)]
        tags: usize,
        /// Size of each image's own layer, in KiB.
        #[arg(long, default_value_t = 256)]
        app_kib: usize,
    },
    BigBlob {
        #[arg(long)]
        registry: String,
        #[arg(long, default_value = "big")]
        repo: String,
        #[arg(long, default_value_t = 1 << 30)]
        size: u64,
    },
    Copy {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Only these repositories (default: the source catalog).
        #[arg(long)]
        only: Vec<String>,
        /// Concurrent copies.
        #[arg(long, default_value_t = 16)]
        jobs: usize,
        /// Per-registry request concurrency.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
}

fn client(
    host: &str,
    concurrency: usize,
) -> Result<Arc<dyn Registry>, houba::registry::RegistryError> {
    let entry = RegistryEntry {
        name: host.to_owned(),
        endpoint: RegistryEndpoint::Http {
            host: host.to_owned(),
            prefix: None,
            tls_verify: false,
            ca_cert: None,
            credentials: Credentials::Ambient,
        },
        mirror_of: None,
        concurrency,
    };
    connect(&entry, &ConnectOptions::default())
}

const CHUNK: usize = 1 << 20;

/// The big layer, chunk by chunk: chunk `i` is noise seeded by `i`.
fn big_stream(size: u64) -> impl futures::Stream<Item = Bytes> {
    let chunks = size.div_ceil(CHUNK as u64);
    futures::stream::iter(0..chunks).map(move |i| {
        let len = (size - i * CHUNK as u64).min(CHUNK as u64) as usize;
        Bytes::from(images::noise(0xB16 ^ i, len))
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().command {
        Command::Seed {
            registry,
            repos,
            tags,
            app_kib,
        } => {
            let registry = client(&registry, 16)?;
            let bases = [
                images::noise_tar_layer(OCI_LAYER_GZIP, 1, 4 << 20),
                images::noise_tar_layer(OCI_LAYER_GZIP, 2, 2 << 20),
                images::noise_tar_layer(OCI_LAYER_GZIP, 3, 1 << 20),
            ];
            let work = (0..repos).flat_map(|r| (0..tags).map(move |t| (r, t)));
            futures::stream::iter(work)
                .map(|(r, t)| {
                    let registry = registry.clone();
                    let bases = bases.clone();
                    async move {
                        let seed = (r * 1000 + t) as u64 * 10;
                        let label = format!("repo{r}:{t}");
                        let layers = |arch_seed: u64| {
                            vec![
                                bases[0].clone(),
                                bases[1 + r % 2].clone(),
                                images::noise_tar_layer(
                                    OCI_LAYER_GZIP,
                                    seed + arch_seed,
                                    app_kib << 10,
                                ),
                            ]
                        };
                        let built = if r % 4 == 0 {
                            images::index(
                                OCI_INDEX,
                                vec![
                                    images::oci_image(&label, "amd64", layers(100)),
                                    images::oci_image(&label, "arm64", layers(200)),
                                ],
                            )
                        } else {
                            images::oci_image(&label, "amd64", layers(100))
                        };
                        images::push_image(
                            registry.as_ref(),
                            &format!("bench/repo{r:02}"),
                            &format!("1.{t}.0"),
                            &built,
                        )
                        .await
                    }
                })
                .buffer_unordered(16)
                .try_collect::<Vec<_>>()
                .await?;
            println!("seeded {repos} repositories × {tags} tags");
        }
        Command::BigBlob {
            registry,
            repo,
            size,
        } => {
            let registry = client(&registry, 4)?;
            let mut hasher = Sha256::new();
            let mut pass = std::pin::pin!(big_stream(size));
            while let Some(chunk) = pass.next().await {
                hasher.update(&chunk);
            }
            let digest = format!(
                "sha256:{}",
                hasher
                    .finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let config = images::Blob::new(
                images::OCI_CONFIG,
                serde_json::to_vec(&serde_json::json!({
                    "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest]}
                }))?,
            );
            let config_descriptor = config.descriptor();
            if !registry.blob_exists(&repo, &digest).await? {
                let stream: ByteStream = Box::pin(big_stream(size).map(Ok));
                registry.put_blob(&repo, &digest, size, stream).await?;
            }
            registry
                .put_blob(
                    &repo,
                    &config_descriptor.digest,
                    config_descriptor.size,
                    images::once_stream(config.bytes.clone()),
                )
                .await?;
            let manifest = serde_json::json!({
                "schemaVersion": 2, "mediaType": images::OCI_MANIFEST,
                "config": {"mediaType": images::OCI_CONFIG, "digest": config_descriptor.digest, "size": config_descriptor.size},
                "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size}],
            });
            registry
                .put_manifest(
                    &repo,
                    "1",
                    images::OCI_MANIFEST,
                    Bytes::from(serde_json::to_vec(&manifest)?),
                )
                .await?;
            println!("pushed {repo}:1 with a {size}-byte layer {digest}");
        }
        Command::Copy {
            from,
            to,
            only,
            jobs,
            concurrency,
        } => {
            let (src, dst) = (client(&from, concurrency)?, client(&to, concurrency)?);
            let started = Instant::now();
            let repos = if only.is_empty() {
                src.catalog().await?
            } else {
                only
            };
            let mut work = Vec::new();
            for repo in repos {
                for tag in src.list_tags(&repo).await? {
                    work.push((repo.clone(), tag));
                }
            }
            let session = Arc::new(TransferSession::new(jobs));
            let copies = work.len();
            futures::stream::iter(work)
                .map(|(repo, tag)| {
                    let (session, src, dst) = (session.clone(), src.clone(), dst.clone());
                    async move {
                        session
                            .copy(src.as_ref(), &repo, &tag, dst.as_ref(), &repo, &tag, None)
                            .await
                    }
                })
                .buffer_unordered(jobs)
                .try_collect::<Vec<_>>()
                .await?;
            let stats = session.stats();
            println!(
                "copied {copies} tags in {:.2}s",
                started.elapsed().as_secs_f64()
            );
            println!("transfer: {}", serde_json::to_string(&stats)?);
            println!("source: {}", src.request_stats());
            println!("destination: {}", dst.request_stats());
        }
    }
    Ok(())
}
