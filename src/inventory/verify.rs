//! The admission check for one image: a complete, self-consistent stamp whose claim reproduces
//! from the upstream, a signature that verifies with the given key, an SBOM, and a newest scan
//! report under the severity threshold. Reads only.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::evidence::{self, Evidence, Severity};
use super::signature::CosignPublicKey;
use super::{Endpoint, InventoryError, manifest_by_digest};
use crate::observe::ManifestCache;
use crate::registry::{Referrer, Registry, digest, referrers};
use crate::stamp::{self, Stamp};

/// Version of the verify report's format.
pub const FORMAT_VERSION: &str = "1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
/// The outcome of one check.
pub enum Status {
    /// The check passed.
    Pass,
    /// The check failed.
    Fail,
    /// Not asked for (no `--key`, no `--max-severity`): says so, never counts as a pass.
    Skip,
}

#[derive(Debug, Clone, Serialize)]
/// One check of `houba verify` (stamp, provenance, signature, SBOM, scan).
pub struct Check {
    /// The check's name.
    pub name: &'static str,
    /// Its outcome.
    pub status: Status,
    /// What was found, in one sentence.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
/// `houba verify`'s answer.
pub struct VerifyReport {
    /// Version of this document's format.
    pub format_version: String,
    /// The image reference given.
    pub image: String,
    /// The digest it resolved to.
    pub digest: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Every check that ran passed.
    pub passed: bool,
}

/// What to check beyond the stamp and the SBOM.
pub struct VerifyOptions<'a> {
    /// The cosign public key signatures are checked with.
    pub key: Option<&'a CosignPublicKey>,
    /// The highest severity a scan may report and still pass.
    pub max_severity: Option<Severity>,
    /// Key prefix of houba's own stamp keys.
    pub label_prefix: &'a str,
}

/// The upstream registry a stamp's `source` host is read through (mirrors honoured).
pub type UpstreamLookup<'a> = &'a (dyn Fn(&str) -> Result<Arc<dyn Registry>, String> + Sync);

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Pass,
        detail: detail.into(),
    }
}

fn fail(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Fail,
        detail: detail.into(),
    }
}

fn skip(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Skip,
        detail: detail.into(),
    }
}

/// The stamp keys every placed image carries (DESIGN §5); `vendor`, `revision` and `created`
/// are optional, `transform.steps` and `recipe` go together (rebuilds).
pub fn missing_keys(annotations: &BTreeMap<String, String>, prefix: &str) -> Vec<String> {
    let oci = [
        stamp::OCI_SOURCE,
        stamp::OCI_BASE_NAME,
        stamp::OCI_BASE_DIGEST,
        stamp::OCI_TITLE,
    ];
    let own = ["policy", "import", "variant", "owners", "artifact.type"];
    let mut missing: Vec<String> = oci
        .iter()
        .map(|k| k.to_string())
        .chain(own.iter().map(|k| format!("{prefix}.{k}")))
        .filter(|k| annotations.get(k).is_none_or(|v| v.is_empty()))
        .collect();
    let steps = format!("{prefix}.transform.steps");
    let recipe = format!("{prefix}.recipe");
    match (
        annotations.contains_key(&steps),
        annotations.contains_key(&recipe),
    ) {
        (true, false) => missing.push(recipe),
        (false, true) => missing.push(steps),
        _ => {}
    }
    missing
}

/// Contradictions inside a stamp.
pub fn inconsistencies(s: &Stamp) -> Vec<String> {
    let mut out = Vec::new();
    if !digest::is_digest(&s.base_digest) {
        out.push(format!("base.digest {:?} is not a digest", s.base_digest));
    }
    if !s.base_name.starts_with(&format!("{}:", s.source)) {
        out.push(format!(
            "base.name {:?} is not a tag of source {:?}",
            s.base_name, s.source
        ));
    }
    if s.source.rsplit('/').next() != Some(s.title.as_str()) {
        out.push(format!(
            "title {:?} is not the last segment of source {:?}",
            s.title, s.source
        ));
    }
    if !matches!(s.artifact_type.as_str(), "image" | "helmChart" | "generic") {
        out.push(format!("artifact.type {:?} is unknown", s.artifact_type));
    }
    if let Some(r) = &s.recipe
        && !digest::is_digest(r)
    {
        out.push(format!("recipe {r:?} is not a digest"));
    }
    out
}

/// Run every check on `repository@reference` of `endpoint`.
pub async fn verify(
    endpoint: &Endpoint,
    repository: &str,
    reference: &str,
    cache: &ManifestCache,
    upstream: UpstreamLookup<'_>,
    options: &VerifyOptions<'_>,
) -> Result<VerifyReport, InventoryError> {
    let r = endpoint.registry.as_ref();
    let image = format!("{}/{repository}", endpoint.host);
    let shown = if digest::is_digest(reference) {
        format!("{image}@{reference}")
    } else {
        format!("{image}:{reference}")
    };
    let head = r
        .head_manifest(repository, reference)
        .await
        .map_err(|e| InventoryError::read(shown.clone(), e))?
        .ok_or_else(|| InventoryError::Invalid {
            what: shown.clone(),
            message: "no such image; check the tag or digest".into(),
        })?;
    let at = format!("{image}@{}", head.digest);
    let manifest = manifest_by_digest(r, cache, repository, &head.digest)
        .await
        .map_err(|e| InventoryError::read(at.clone(), e))?
        .ok_or_else(|| InventoryError::Invalid {
            what: at.clone(),
            message: "the manifest disappeared while reading it".into(),
        })?;
    let annotations = stamp::manifest_annotations(&manifest).unwrap_or_default();
    let prefix = options.label_prefix;
    let mut checks = Vec::new();

    match Stamp::from_annotations(&annotations, prefix) {
        None => {
            checks.push(fail(
                "stamp",
                format!(
                    "unstamped: no `{prefix}.policy` annotation; houba did not place this image"
                ),
            ));
            checks.push(fail("provenance", "nothing to check without a stamp"));
        }
        Some(s) => {
            let missing = missing_keys(&annotations, prefix);
            let wrong = inconsistencies(&s);
            if missing.is_empty() && wrong.is_empty() {
                checks.push(pass(
                    "stamp",
                    format!(
                        "policy {}/{}/{}, base {}",
                        s.policy, s.import, s.variant, s.base_name
                    ),
                ));
                checks.push(provenance(&s, &head.digest, upstream, prefix).await);
            } else {
                let mut why = Vec::new();
                if !missing.is_empty() {
                    why.push(format!("missing {}", missing.join(", ")));
                }
                why.extend(wrong);
                checks.push(fail(
                    "stamp",
                    format!("incomplete stamp: {}", why.join("; ")),
                ));
                checks.push(fail("provenance", "not checked: the stamp is incomplete"));
            }
        }
    }

    let listed = r
        .referrer_details(repository, &head.digest)
        .await
        .map_err(|e| InventoryError::read(format!("the referrers of {at}"), e))?;
    let req = super::ScanRequest {
        endpoints: std::slice::from_ref(endpoint),
        scope: &super::Scope::default(),
        managed: &Default::default(),
        cache,
        label_prefix: prefix,
        concurrency: 1,
        catalog: false,
    };
    let listed = super::complete_listing(&req, endpoint, repository, listed).await?;
    let found = Evidence::from_referrers(&listed, prefix);

    checks.push(match options.key {
        None => skip("signature", "not checked: pass --key cosign.pub"),
        Some(key) => {
            signature_check(endpoint, repository, &head.digest, &listed, cache, key).await?
        }
    });
    checks.push(if found.sbom.is_empty() {
        fail(
            "sbom",
            format!(
                "no SBOM attached (no referrer of type {} or {})",
                evidence::SPDX,
                evidence::CYCLONEDX
            ),
        )
    } else {
        pass("sbom", found.sbom.join(", "))
    });
    checks.push(match (options.max_severity, &found.scan) {
        (None, _) => skip("scan", "not checked: pass --max-severity LEVEL"),
        (Some(_), None) => fail("scan", "no scan report attached (application/sarif+json)"),
        (Some(max), Some(report)) => {
            let over = max.above().map_or(0, |s| report.at_or_above(s));
            let when = report.created.as_deref().unwrap_or("undated");
            if over == 0 {
                pass(
                    "scan",
                    format!("newest report ({when}): {}", report.counts()),
                )
            } else {
                fail(
                    "scan",
                    format!(
                        "newest report ({when}): {}: {over} finding(s) above {}",
                        report.counts(),
                        serde_json::to_value(max)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ),
                )
            }
        }
    });
    let passed = checks.iter().all(|c| c.status != Status::Fail);
    Ok(VerifyReport {
        format_version: FORMAT_VERSION.to_string(),
        image: shown,
        digest: head.digest,
        checks,
        passed,
    })
}

/// A copy's stamp must reproduce: the upstream manifest at `base.digest`, stamped with this
/// very stamp, gives this very digest. A rebuild's base must at least exist upstream.
async fn provenance(
    s: &Stamp,
    live_digest: &str,
    upstream: UpstreamLookup<'_>,
    prefix: &str,
) -> Check {
    let Some((host, repo)) = s.source.split_once('/') else {
        return fail(
            "provenance",
            format!("source {:?} names no registry", s.source),
        );
    };
    let base_ref = format!("{}@{}", s.source, s.base_digest);
    let registry = match upstream(host) {
        Ok(r) => r,
        Err(e) => return fail("provenance", format!("cannot reach {host}: {e}")),
    };
    let got = match registry.get_manifest(repo, &s.base_digest).await {
        Ok(g) => g,
        Err(e) => return fail("provenance", format!("cannot read {base_ref}: {e}")),
    };
    let Some((d, upstream_bytes)) = got else {
        return fail(
            "provenance",
            format!(
                "the stamped base {base_ref} does not exist upstream; the stamp was edited or the base was deleted"
            ),
        );
    };
    if !s.transform_steps.is_empty() {
        return pass(
            "provenance",
            format!("rebuild of {base_ref} (base present upstream)"),
        );
    }
    let claimed = s.to_annotations(prefix);
    match stamp::stamp_manifest(&upstream_bytes, &d.media_type, &claimed, prefix) {
        Ok(m) if m.digest == live_digest => {
            pass("provenance", format!("reproduces from {base_ref}"))
        }
        Ok(m) => fail(
            "provenance",
            format!(
                "the content does not match its stamp: stamping {base_ref} gives {}, not {live_digest}",
                m.digest
            ),
        ),
        Err(e) => fail("provenance", format!("cannot stamp {base_ref}: {e}")),
    }
}

/// Every signature attached (referrers, then cosign's `.sig` tag): pass when one verifies.
async fn signature_check(
    endpoint: &Endpoint,
    repository: &str,
    subject: &str,
    listed: &[Referrer],
    cache: &ManifestCache,
    key: &CosignPublicKey,
) -> Result<Check, InventoryError> {
    let r = endpoint.registry.as_ref();
    let mut manifests: Vec<String> = listed
        .iter()
        .filter(|x| x.artifact_type.as_deref() == Some(evidence::COSIGN_SIGNATURE))
        .map(|x| x.descriptor.digest.clone())
        .collect();
    if let Some(tag) = referrers::fallback_tag(subject).map(|t| format!("{t}.sig"))
        && let Some(d) = r
            .head_manifest(repository, &tag)
            .await
            .map_err(|e| InventoryError::read(format!("{}/{repository}:{tag}", endpoint.host), e))?
        && !manifests.contains(&d.digest)
    {
        manifests.push(d.digest);
    }
    if manifests.is_empty() {
        return Ok(fail("signature", "no signature attached"));
    }
    let reference = format!("{}/{repository}", endpoint.host);
    let mut reasons = Vec::new();
    for m in &manifests {
        let what = format!("{reference}@{m}");
        let Some(bytes) = manifest_by_digest(r, cache, repository, m)
            .await
            .map_err(|e| InventoryError::read(what.clone(), e))?
        else {
            continue;
        };
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let layers = value.get("layers").and_then(Value::as_array);
        for layer in layers.into_iter().flatten() {
            if layer.get("mediaType").and_then(Value::as_str)
                != Some(evidence::COSIGN_SIMPLE_SIGNING)
            {
                continue;
            }
            let Some(sig) = layer
                .pointer(&format!(
                    "/annotations/{}",
                    evidence::COSIGN_SIGNATURE_ANNOTATION.replace('/', "~1")
                ))
                .and_then(Value::as_str)
            else {
                reasons.push("a signature layer without its signature annotation".to_string());
                continue;
            };
            let Some(blob) = layer.get("digest").and_then(Value::as_str) else {
                continue;
            };
            let payload = super::read_small_blob(r, repository, blob, 1 << 20)
                .await
                .map_err(|e| InventoryError::read(format!("{reference}@{blob}"), e))?;
            match key.verify_simple_signing(&payload, sig, &reference, subject) {
                Ok(()) => return Ok(pass("signature", format!("verified ({m})"))),
                Err(e) => reasons.push(e.to_string()),
            }
        }
    }
    reasons.dedup();
    Ok(fail(
        "signature",
        format!(
            "{} signature(s) attached, none verifies with the key: {}",
            manifests.len(),
            if reasons.is_empty() {
                "no simple-signing layer".to_string()
            } else {
                reasons.join("; ")
            }
        ),
    ))
}

/// Text view: one line per check.
pub fn text(report: &VerifyReport) -> String {
    let mut out = format!("{} ({})\n", report.image, report.digest);
    for c in &report.checks {
        let mark = match c.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        };
        out.push_str(&format!("  {mark} {:<11} {}\n", c.name, c.detail));
    }
    out.push_str(if report.passed {
        "Verified: every check passed.\n"
    } else {
        "Not verified: see the failed checks above.\n"
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped() -> BTreeMap<String, String> {
        Stamp {
            source: "docker.io/library/debian".into(),
            base_name: "docker.io/library/debian:12.5".into(),
            base_digest: format!("sha256:{}", "a".repeat(64)),
            title: "debian".into(),
            policy: "debian".into(),
            import: "stable".into(),
            variant: "default".into(),
            owners: vec!["group:x".into()],
            artifact_type: "image".into(),
            ..Stamp::default()
        }
        .to_annotations("io.houba")
    }

    #[test]
    fn a_complete_stamp_has_nothing_missing_or_contradictory() {
        let a = stamped();
        assert!(missing_keys(&a, "io.houba").is_empty());
        let s = Stamp::from_annotations(&a, "io.houba").unwrap();
        assert!(inconsistencies(&s).is_empty());
    }

    #[test]
    fn missing_and_contradictory_keys_are_named() {
        let mut a = stamped();
        a.remove("io.houba.owners");
        a.insert("io.houba.transform.steps".into(), "injectCA".into());
        assert_eq!(
            missing_keys(&a, "io.houba"),
            vec!["io.houba.owners", "io.houba.recipe"]
        );
        a.insert(
            stamp::OCI_BASE_NAME.into(),
            "docker.io/library/ubuntu:24.04".into(),
        );
        a.insert(stamp::OCI_BASE_DIGEST.into(), "latest".into());
        let s = Stamp::from_annotations(&a, "io.houba").unwrap();
        let wrong = inconsistencies(&s);
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(wrong[0].contains("not a digest") && wrong[1].contains("not a tag of source"));
    }
}
