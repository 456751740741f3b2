//! Rebuilds an image held in an OCI layout directory with houba's native engine and tags the
//! result in the same layout. Used by `scripts/bench-build`; handy to try the engine by hand:
//!
//! ```sh
//! cargo run --release --example rebuild -- --layout ./oci --from base --to hardened \
//!     --ca corp-root=./corp-ca.pem --apt-mirror https://mirror.example/debian-proxy \
//!     --zone Europe/Paris
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use houba::build::layout::LayoutDir;
use houba::build::{
    BuildError, TransformRosters, manifest_media_type, rebuild_image, rebuild_index, recipe_digest,
};
use houba::config::{CaSource, PackageMirror};
use houba::policy::resolved::TransformStep;

#[derive(Debug, Parser)]
struct Args {
    /// OCI image layout directory holding the base (and receiving the result).
    #[arg(long)]
    layout: PathBuf,
    /// Reference name of the base in the layout's index.json.
    #[arg(long)]
    from: String,
    /// Reference name to give the rebuilt image.
    #[arg(long)]
    to: String,
    /// `name=path/to/ca.pem`: inject this CA certificate (repeatable).
    #[arg(long = "ca", value_name = "NAME=PEM")]
    cas: Vec<String>,
    /// Rewrite apt sources onto this mirror base URL.
    #[arg(long)]
    apt_mirror: Option<String>,
    /// Rewrite apk repositories onto this mirror base URL.
    #[arg(long)]
    apk_mirror: Option<String>,
    /// Rewrite yum/dnf repositories onto this mirror base URL.
    #[arg(long)]
    yum_mirror: Option<String>,
    /// Set the image's timezone.
    #[arg(long)]
    zone: Option<String>,
    /// Where the new layer is written before it is moved into the layout.
    #[arg(long, default_value = "target/rebuild-work")]
    workdir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut rosters = TransformRosters::default();
    let mut steps = Vec::new();
    let mut cert_names = Vec::new();
    for ca in &args.cas {
        let (name, path) = ca
            .split_once('=')
            .ok_or_else(|| format!("--ca `{ca}`: expected NAME=PATH"))?;
        rosters
            .ca_certs
            .insert(name.to_string(), CaSource::Path(PathBuf::from(path)));
        cert_names.push(name.to_string());
    }
    if !cert_names.is_empty() {
        steps.push(TransformStep::InjectCa { certs: cert_names });
    }
    let mirror = PackageMirror {
        apt: args.apt_mirror.clone(),
        apk: args.apk_mirror.clone(),
        yum: args.yum_mirror.clone(),
    };
    if mirror != PackageMirror::default() {
        rosters.package_mirrors.insert("mirror".to_string(), mirror);
        steps.push(TransformStep::RewritePackageSources {
            mirror: "mirror".to_string(),
            managers: vec![],
        });
    }
    if let Some(zone) = &args.zone {
        steps.push(TransformStep::SetTimezone { zone: zone.clone() });
    }

    let layout = LayoutDir::new(&args.layout);
    let (_, digest, _) = layout.resolve_ref(&args.from)?;
    let manifest = layout.read_blob(&digest)?;
    let label = format!("{}:{}", args.layout.display(), args.from);
    let recipe = recipe_digest(&steps, &[], &rosters, &digest)?;
    let annotations = BTreeMap::from([
        (
            "org.opencontainers.image.base.digest".to_string(),
            digest.clone(),
        ),
        ("io.houba.recipe".to_string(), recipe.clone()),
    ]);

    let started = Instant::now();
    let media_type = manifest_media_type(&manifest).unwrap_or_default();
    if media_type.contains("index") || media_type.contains("manifest.list") {
        let built = rebuild_index(
            &label,
            &manifest,
            &layout,
            &steps,
            &rosters,
            &annotations,
            &args.workdir,
        )?;
        let elapsed = started.elapsed();
        layout.store_index(&args.to, &built)?;
        for dropped in &built.dropped {
            println!("dropped {}: {}", dropped.digest, dropped.reason);
        }
        println!(
            "rebuilt {} platform(s) in {:.3}s: {}",
            built.platforms.len(),
            elapsed.as_secs_f64(),
            built.index_digest()
        );
    } else {
        let config_digest =
            serde_json::from_slice::<serde_json::Value>(&manifest)?["config"]["digest"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| BuildError::Unsupported {
                    image: label.clone(),
                    detail: "no config descriptor".to_string(),
                })?;
        let config = layout.read_blob(&config_digest)?;
        let built = rebuild_image(
            &label,
            &manifest,
            &config,
            &layout,
            &steps,
            &rosters,
            &annotations,
            &args.workdir,
        )?;
        let elapsed = started.elapsed();
        println!(
            "rebuilt in {:.3}s (read {} layer(s)): manifest {} new layer {} ({} bytes)",
            elapsed.as_secs_f64(),
            built.layers_read,
            built.manifest_digest(),
            built.new_layer.digest,
            built.new_layer.size
        );
        layout.store_image(&args.to, &built)?;
    }
    println!("recipe {recipe}");
    Ok(())
}
