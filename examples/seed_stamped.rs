//! Seeds a registry with stamped images for `scripts/bench-blast-radius`: `--repos`
//! repositories × `--tags` tags, each tag its own image carrying a houba stamp (one base of
//! three, one owner of four), every tenth image unstamped, every other one with an SPDX SBOM
//! referrer and every fifth with a SARIF report referrer (counts as annotations).
//!
//!     cargo run --release --example seed_stamped -- --registry 127.0.0.1:5000 --repos 40 --tags 25

#[path = "../tests/support/images.rs"]
mod images;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use houba::config::{Credentials, RegistryEndpoint, RegistryEntry};
use houba::registry::digest::sha256_digest;
use houba::registry::{ConnectOptions, Registry, RegistryError, connect};
use images::{Blob, OCI_CONFIG, OCI_EMPTY, OCI_LAYER_GZIP, OCI_MANIFEST};
use serde_json::{Value, json};

#[derive(Parser)]
struct Cli {
    /// `host:port` of a plain-HTTP registry.
    #[arg(long)]
    registry: String,
    #[arg(long, default_value_t = 40)]
    repos: usize,
    #[arg(long, default_value_t = 25)]
    tags: usize,
    /// Concurrent requests.
    #[arg(long, default_value_t = 32)]
    jobs: usize,
}

const BASES: [&str; 3] = [
    "docker.io/library/debian",
    "docker.io/library/alpine",
    "docker.io/library/ubuntu",
];
const OWNERS: [&str; 4] = [
    "group:payments",
    "group:search",
    "group:platform",
    "group:data",
];

/// The base digest the bench queries: `sha256` of the base's name.
fn base_digest(b: usize) -> String {
    sha256_digest(BASES[b].as_bytes())
}

fn manifest(config: &Blob, layer: &Blob, annotations: Value) -> Bytes {
    let c = config.descriptor();
    let l = layer.descriptor();
    Bytes::from(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": c.media_type, "digest": c.digest, "size": c.size},
            "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size}],
            "annotations": annotations,
        }))
        .expect("json"),
    )
}

fn referrer(artifact_type: &str, layer: &Blob, subject: &Value, annotations: Value) -> Bytes {
    let e = Blob::new(OCI_EMPTY, &b"{}"[..]).descriptor();
    let l = layer.descriptor();
    Bytes::from(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": e.media_type, "digest": e.digest, "size": e.size},
            "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size}],
            "subject": subject,
            "annotations": annotations,
        }))
        .expect("json"),
    )
}

async fn put_blob(r: &dyn Registry, repo: &str, blob: &Blob) -> Result<(), RegistryError> {
    let d = blob.descriptor();
    if !r.blob_exists(repo, &d.digest).await? {
        r.put_blob(
            repo,
            &d.digest,
            d.size,
            images::once_stream(blob.bytes.clone()),
        )
        .await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let entry = RegistryEntry {
        name: "bench".into(),
        endpoint: RegistryEndpoint::Http {
            host: cli.registry.clone(),
            prefix: None,
            tls_verify: false,
            ca_cert: None,
            credentials: Credentials::Ambient,
        },
        mirror_of: None,
        concurrency: cli.jobs,
    };
    let registry: Arc<dyn Registry> = connect(&entry, &ConnectOptions::default())?;
    let started = Instant::now();
    let config = Blob::new(OCI_CONFIG, &br#"{"architecture":"amd64","os":"linux"}"#[..]);
    let layer = images::tar_layer(OCI_LAYER_GZIP, &[("app/id", b"bench\n")]);
    let sbom = Blob::new(
        "application/spdx+json",
        &br#"{"spdxVersion":"SPDX-2.3"}"#[..],
    );
    let sarif = Blob::new(
        "application/sarif+json",
        &br#"{"version":"2.1.0","runs":[]}"#[..],
    );
    let empty = Blob::new(OCI_EMPTY, &b"{}"[..]);
    for i in 0..cli.repos {
        let repo = format!("bench/r{i:04}");
        for b in [&config, &layer, &sbom, &sarif, &empty] {
            put_blob(registry.as_ref(), &repo, b).await?;
        }
    }
    let jobs: Vec<(usize, usize)> = (0..cli.repos)
        .flat_map(|i| (0..cli.tags).map(move |j| (i, j)))
        .collect();
    futures::stream::iter(jobs)
        .map(|(i, j)| {
            let registry = registry.clone();
            let (config, layer, sbom, sarif) = (&config, &layer, &sbom, &sarif);
            async move {
                let n = i * 1000 + j;
                let repo = format!("bench/r{i:04}");
                let tag = format!("1.0.{j}");
                let b = n % 3;
                let mut a = json!({"com.example.n": n.to_string()});
                if n % 10 != 9 {
                    let m = a.as_object_mut().expect("object");
                    m.insert("org.opencontainers.image.source".into(), json!(BASES[b]));
                    m.insert(
                        "org.opencontainers.image.base.name".into(),
                        json!(format!("{}:1", BASES[b])),
                    );
                    m.insert(
                        "org.opencontainers.image.base.digest".into(),
                        json!(base_digest(b)),
                    );
                    m.insert(
                        "org.opencontainers.image.title".into(),
                        json!(BASES[b].rsplit('/').next()),
                    );
                    m.insert("io.houba.policy".into(), json!(format!("r{i:04}")));
                    m.insert("io.houba.import".into(), json!("stable"));
                    m.insert("io.houba.variant".into(), json!("default"));
                    m.insert("io.houba.owners".into(), json!(OWNERS[n % 4]));
                    m.insert("io.houba.artifact.type".into(), json!("image"));
                }
                let bytes = manifest(config, layer, a);
                let d = houba::registry::Descriptor {
                    media_type: OCI_MANIFEST.into(),
                    digest: sha256_digest(&bytes),
                    size: bytes.len() as u64,
                };
                let subject =
                    json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size});
                registry
                    .put_manifest(&repo, &tag, OCI_MANIFEST, bytes)
                    .await?;
                if n % 2 == 0 {
                    let m = referrer("application/spdx+json", sbom, &subject, json!({}));
                    registry.attach_referrer(&repo, &d, OCI_MANIFEST, m).await?;
                }
                if n % 5 == 0 {
                    let m = referrer(
                        "application/sarif+json",
                        sarif,
                        &subject,
                        json!({"io.houba.scan.critical": "1", "io.houba.scan.high": "2",
                               "io.houba.scan.medium": "3", "io.houba.scan.low": "4",
                               "org.opencontainers.image.created": "2024-06-01T00:00:00Z"}),
                    );
                    registry.attach_referrer(&repo, &d, OCI_MANIFEST, m).await?;
                }
                Ok::<_, RegistryError>(())
            }
        })
        .buffer_unordered(cli.jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!(
        "seeded {} images in {} repositories in {:.1}s; base digest of {}: {}",
        cli.repos * cli.tags,
        cli.repos,
        started.elapsed().as_secs_f64(),
        BASES[0],
        base_digest(0)
    );
    Ok(())
}
