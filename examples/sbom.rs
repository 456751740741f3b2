//! Writes houba's native SBOMs of an image held in an OCI layout directory. Used by
//! `scripts/bench-sbom`; handy to look at what houba would attach:
//!
//! ```sh
//! cargo run --release --example sbom -- --layout ./oci --ref base --out ./sbom
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use houba::evidence::collect::{EvidenceCache, image_contents, render_all};
use houba::evidence::sbom::SbomFormat;
use houba::registry::Registry;
use houba::registry::layout::LayoutRegistry;

#[derive(Debug, Parser)]
struct Args {
    /// OCI image layout directory holding the image.
    #[arg(long)]
    layout: PathBuf,
    /// Reference name of the image in the layout's index.json.
    #[arg(long = "ref")]
    reference: String,
    /// Directory receiving `sbom.spdx.json` and `sbom.cdx.json`.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (Some(root), Some(repository)) = (
        args.layout.parent(),
        args.layout.file_name().and_then(|n| n.to_str()),
    ) else {
        eprintln!("--layout must name a directory");
        return ExitCode::FAILURE;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let result = runtime.block_on(async {
        let registry = LayoutRegistry::new(root.to_path_buf());
        let descriptor = registry
            .head_manifest(repository, &args.reference)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "{}: no image named {}",
                    args.layout.display(),
                    args.reference
                )
            })?;
        // No cache: every layer is read, as on a first placement.
        let contents = image_contents(
            &registry,
            repository,
            &descriptor.digest,
            &EvidenceCache::new(None),
        )
        .await
        .map_err(|e| e.to_string())?;
        let docs = render_all(&SbomFormat::ALL, repository, &descriptor.digest, &contents)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((contents.inventory.packages.len(), docs))
    });
    match result {
        Ok((packages, docs)) => {
            std::fs::create_dir_all(&args.out).expect("output directory");
            for (format, bytes) in docs {
                let name = match format {
                    SbomFormat::Spdx => "sbom.spdx.json",
                    SbomFormat::Cyclonedx => "sbom.cdx.json",
                };
                std::fs::write(args.out.join(name), bytes).expect("write SBOM");
            }
            println!(
                "{packages} packages, SPDX and CycloneDX written in {:.3} s",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
