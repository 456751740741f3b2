//! Ground truth for the read side: a generated registry (60 images in 12 repositories: copies
//! and rebuilds of 3 bases, several owners, some images with two owners, some pushed by hand
//! with no stamp, some with SBOMs, signatures and SARIF reports). The expected answers are
//! computed from the generator's own records (never from houba's code), committed in
//! `tests/consumers_expected/ground_truth.json`, and `blast-radius --base-digest`, `--owner`,
//! `--cve` and `audit` must give exactly them, on ferro-oci-server and on docker-registry.
//!
//! `HOUBA_BLESS=1` rewrites the committed file from the records.

mod consumers_support;
mod support;

use std::collections::BTreeMap;

use houba::registry::Descriptor;
use houba::registry::digest::sha256_digest;
use serde_json::{Value, json};
use support::houba::{Policy, Workspace};
use support::images::{self, OCI_LAYER_GZIP};
use support::{Auth, TestRegistry, distribution, ferro};

use consumers_support::{Counts, attach_sarif, attach_sbom, attach_signature, key};

const REPOSITORIES: usize = 12;
const IMAGES_PER_REPOSITORY: usize = 5;
/// Repositories `mirror/app-00` … `mirror/app-04` have a policy; the others do not.
const MANAGED: usize = 5;
const OWNERS: [&str; 3] = ["group:payments", "group:search", "group:platform"];
const SECOND_OWNER: &str = "user:alice";

struct Base {
    source: &'static str,
    tag: &'static str,
}

const BASES: [Base; 3] = [
    Base {
        source: "docker.io/library/debian",
        tag: "12.5",
    },
    Base {
        source: "docker.io/library/alpine",
        tag: "3.20",
    },
    Base {
        source: "registry.access.redhat.com/ubi9/ubi",
        tag: "9.4",
    },
];

fn base_digest(b: usize) -> String {
    sha256_digest(format!("upstream {}:{}", BASES[b].source, BASES[b].tag).as_bytes())
}

/// What the generator placed, in its own terms.
#[derive(Debug, Clone)]
struct Record {
    repository: String,
    tags: Vec<String>,
    built: images::Built,
    stamped: bool,
    base: usize,
    rebuild: bool,
    owners: Vec<String>,
    sbom: bool,
    signed: bool,
    scan: Option<(Counts, Vec<&'static str>)>,
}

fn records() -> Vec<Record> {
    let mut out = Vec::new();
    for i in 0..REPOSITORIES {
        for j in 0..IMAGES_PER_REPOSITORY {
            let n = i * IMAGES_PER_REPOSITORY + j;
            let repository = format!("mirror/app-{i:02}");
            let stamped = n % 7 != 3;
            let base = (i + j) % 3;
            let rebuild = j % 2 == 1;
            let mut owners = vec![OWNERS[i % 3].to_string()];
            if j == 4 {
                owners.push(SECOND_OWNER.to_string());
            }
            let mut tags = vec![format!("1.{j}.0")];
            if j == 4 {
                tags.push("latest".into());
            }
            let scan = n.is_multiple_of(4).then(|| {
                let counts = Counts {
                    critical: (j % 2) as u64,
                    high: j as u64,
                    medium: (i % 4) as u64,
                    low: 1,
                };
                let mut cves = Vec::new();
                if base == 0 {
                    cves.push("CVE-2024-3094");
                    if j % 2 == 0 {
                        cves.push("CVE-2023-4911");
                    }
                }
                (counts, cves)
            });
            let mut annotations = json!({"com.example.built-by": "generator"});
            if stamped {
                let b = &BASES[base];
                let a = annotations.as_object_mut().unwrap();
                a.insert("org.opencontainers.image.source".into(), json!(b.source));
                a.insert(
                    "org.opencontainers.image.base.name".into(),
                    json!(format!("{}:{}", b.source, b.tag)),
                );
                a.insert(
                    "org.opencontainers.image.base.digest".into(),
                    json!(base_digest(base)),
                );
                a.insert(
                    "org.opencontainers.image.title".into(),
                    json!(b.source.rsplit('/').next().unwrap()),
                );
                a.insert("io.houba.policy".into(), json!(format!("app-{i:02}")));
                a.insert("io.houba.import".into(), json!("stable"));
                a.insert("io.houba.variant".into(), json!("default"));
                a.insert("io.houba.owners".into(), json!(owners.join(",")));
                a.insert("io.houba.artifact.type".into(), json!("image"));
                if rebuild {
                    a.insert("io.houba.transform.steps".into(), json!("injectCA"));
                    a.insert(
                        "io.houba.recipe".into(),
                        json!(sha256_digest(format!("recipe {n}").as_bytes())),
                    );
                }
            }
            let layer = images::tar_layer(
                OCI_LAYER_GZIP,
                &[("app/id", format!("image {n}\n").as_bytes())],
            );
            let built =
                images::oci_image_annotated(&format!("image {n}"), vec![layer], annotations);
            out.push(Record {
                repository,
                tags,
                built,
                stamped,
                base,
                rebuild,
                owners,
                sbom: n.is_multiple_of(2),
                signed: n.is_multiple_of(3),
                scan,
            });
        }
    }
    out
}

fn artifact_json(r: &Record) -> Value {
    json!({
        "repository": r.repository,
        "digest": r.built.digest(),
        "tags": r.tags,
        "owners": if r.stamped { json!(r.owners) } else { json!(null) },
        "sbom": if r.sbom { json!(["spdx"]) } else { json!([]) },
        "signed": r.signed,
        "scan": r.scan.as_ref().map(|(c, _)| c.text()),
    })
}

fn sorted(mut v: Vec<Value>) -> Value {
    v.sort_by_key(|a| (a["repository"].to_string(), a["digest"].to_string()));
    Value::Array(v)
}

/// The answers, from the records alone.
fn expected(records: &[Record]) -> Value {
    let stamped = || records.iter().filter(|r| r.stamped);
    let pick = |f: &dyn Fn(&Record) -> bool| {
        sorted(stamped().filter(|r| f(r)).map(artifact_json).collect())
    };
    let mut repositories = BTreeMap::new();
    let mut total = json!({"tagged_images": 0, "unstamped": 0, "stamped": 0, "with_sbom": 0, "signed": 0, "scanned": 0});
    for r in records {
        let e = repositories.entry(r.repository.clone()).or_insert_with(
            || json!({"tagged_images": 0, "unstamped": 0, "stamped": 0, "with_sbom": 0, "signed": 0, "scanned": 0}),
        );
        for c in [e, &mut total] {
            let mut bump = |k: &str, yes: bool| {
                if yes {
                    c[k] = json!(c[k].as_u64().unwrap() + 1);
                }
            };
            bump("tagged_images", true);
            bump("stamped", r.stamped);
            bump("unstamped", !r.stamped);
            bump("with_sbom", r.sbom);
            bump("signed", r.signed);
            bump("scanned", r.scan.is_some());
        }
    }
    json!({
        "images": records.len(),
        "base_digest": {"query": base_digest(0), "artifacts": pick(&|r| r.base == 0)},
        "owner": {"query": SECOND_OWNER, "artifacts": pick(&|r| r.owners.iter().any(|o| o == SECOND_OWNER))},
        "owner_platform": {"query": OWNERS[2], "artifacts": pick(&|r| r.owners.iter().any(|o| o == OWNERS[2]))},
        "cve": {"query": "CVE-2023-4911", "artifacts": pick(&|r| r.scan.as_ref().is_some_and(|(_, c)| c.contains(&"CVE-2023-4911")))},
        "rebuilds_of_debian": pick(&|r| r.base == 0 && r.rebuild).as_array().unwrap().len(),
        "unstamped": sorted(records.iter().filter(|r| !r.stamped).map(artifact_json).collect()),
        "audit": {
            "total": total,
            "repositories": repositories,
            "unmanaged": (MANAGED..REPOSITORIES).map(|i| format!("mirror/app-{i:02}")).collect::<Vec<_>>(),
        },
    })
}

#[test]
fn committed_expected_answer_is_the_generators() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/consumers_expected/ground_truth.json");
    let want = expected(&records());
    if std::env::var_os("HOUBA_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&want).unwrap() + "\n").unwrap();
    }
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("committed answer")).unwrap();
    assert_eq!(
        committed, want,
        "regenerate with HOUBA_BLESS=1 and review the diff"
    );
    assert!(records().len() >= 50);
}

async fn generate(registry: &TestRegistry, sig_tags: bool) -> Vec<Record> {
    let client = registry.client();
    let r = client.as_ref();
    let signer = key(1);
    let all = records();
    for rec in &all {
        for t in &rec.tags {
            images::push_image(r, &rec.repository, t, &rec.built)
                .await
                .expect("push");
        }
        let subject: Descriptor = rec.built.descriptor();
        if rec.sbom {
            attach_sbom(r, &rec.repository, &subject, false).await;
        }
        if rec.signed {
            attach_signature(
                r,
                registry.host(),
                &rec.repository,
                &subject,
                &signer,
                sig_tags,
            )
            .await;
        }
        if let Some((counts, cves)) = &rec.scan {
            // An older report with other counts: the newest one is what counts.
            attach_sarif(
                r,
                &rec.repository,
                &subject,
                Counts {
                    critical: 9,
                    ..Counts::default()
                },
                &["CVE-2023-4911"],
                "2024-01-01T00:00:00Z",
            )
            .await;
            attach_sarif(
                r,
                &rec.repository,
                &subject,
                *counts,
                cves,
                "2024-06-01T00:00:00Z",
            )
            .await;
        }
    }
    all
}

fn workspace(registry: &TestRegistry) -> Workspace {
    let ws = Workspace::new(registry.host(), &[("dest", registry.host())]);
    for i in 0..MANAGED {
        let p = Policy::new(
            &format!("app-{i:02}"),
            &format!("app-{i:02}"),
            r"^1\.\d+\.0$",
            "dest",
        );
        ws.policy(&format!("app-{i:02}"), &p.yaml());
    }
    ws
}

/// houba's JSON artifacts in the generator's terms.
fn projected(list: &Value, stamped: bool) -> Value {
    sorted(
        list.as_array()
            .expect("array")
            .iter()
            .map(|a| {
                json!({
                    "repository": a["repository"],
                    "digest": a["digest"],
                    "tags": a["tags"],
                    "owners": if stamped { a["owners"].clone() } else { json!(null) },
                    "sbom": a["sbom"],
                    "signed": a["signed"],
                    "scan": a["scan"].as_object().map(|_| {
                        format!("C{} H{} M{} L{}", a["scan"]["critical"], a["scan"]["high"], a["scan"]["medium"], a["scan"]["low"])
                    }),
                })
            })
            .collect(),
    )
}

fn flattened(report: &Value) -> Value {
    let all: Vec<Value> = report["by_base_digest"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["artifacts"].as_array().unwrap().clone())
        .collect();
    Value::Array(all)
}

async fn check(registry: TestRegistry, sig_tags: bool) {
    let records = generate(&registry, sig_tags).await;
    let want = expected(&records);
    let ws = workspace(&registry);

    let cold = ws
        .run(&[
            "blast-radius",
            "--base-digest",
            &base_digest(0),
            "--format",
            "json",
        ])
        .await;
    let cold = cold.expect_code(0).json();
    assert_eq!(
        projected(&flattened(&cold), true),
        want["base_digest"]["artifacts"]
    );
    assert_eq!(cold["by_base_digest"].as_array().unwrap().len(), 1);
    assert_eq!(projected(&cold["unstamped"], false), want["unstamped"]);
    assert_eq!(cold["scanned"]["images"], want["images"]);
    // A manifest is read once per digest: a warm run reads none again.
    let warm = ws
        .run(&[
            "blast-radius",
            "--base-digest",
            &base_digest(0),
            "--format",
            "json",
        ])
        .await
        .expect_code(0)
        .json();
    assert_eq!(warm["by_base_digest"], cold["by_base_digest"]);
    let gets = |r: &Value| -> u64 {
        r["requests"]
            .as_object()
            .unwrap()
            .values()
            .map(|s| s["get"].as_u64().unwrap())
            .sum()
    };
    assert!(
        gets(&warm) + 60 <= gets(&cold),
        "the warm run re-read manifests: cold {} GETs, warm {}",
        gets(&cold),
        gets(&warm)
    );

    for (key, flag) in [("owner", "--owner"), ("owner_platform", "--owner")] {
        let q = want[key]["query"].as_str().unwrap();
        let got = ws
            .run(&["blast-radius", flag, q, "--format", "json"])
            .await
            .expect_code(0)
            .json();
        let group = got["by_owner"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["owner"] == q)
            .unwrap_or_else(|| panic!("no group for {q}"));
        assert_eq!(
            projected(&group["artifacts"], true),
            want[key]["artifacts"],
            "{q}"
        );
        assert_eq!(
            projected(&flattened(&got), true),
            want[key]["artifacts"],
            "{q}"
        );
    }

    let cve = ws
        .run(&["blast-radius", "--cve", "CVE-2023-4911", "--format", "json"])
        .await
        .expect_code(0)
        .json();
    assert_eq!(projected(&flattened(&cve), true), want["cve"]["artifacts"]);

    let audit = ws
        .run(&["audit", "--format", "json"])
        .await
        .expect_code(0)
        .json();
    assert_eq!(audit["format_version"], "1");
    for k in [
        "tagged_images",
        "unstamped",
        "stamped",
        "with_sbom",
        "signed",
        "scanned",
    ] {
        assert_eq!(audit["total"][k], want["audit"]["total"][k], "total {k}");
    }
    for repo in audit["repositories"].as_array().unwrap() {
        let name = repo["repository"].as_str().unwrap();
        let w = &want["audit"]["repositories"][name];
        for k in [
            "tagged_images",
            "unstamped",
            "stamped",
            "with_sbom",
            "signed",
            "scanned",
        ] {
            assert_eq!(repo[k], w[k], "{name} {k}");
        }
    }
    let unmanaged: Vec<String> = audit["unmanaged_repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_str().unwrap();
            r.strip_prefix(&format!("{}/", registry.host()))
                .unwrap_or(r)
                .to_string()
        })
        .collect();
    assert_eq!(json!(unmanaged), want["audit"]["unmanaged"]);
    // The gate: 51 of 60 stamped is 85%.
    ws.run(&["audit", "--min-coverage", "0.8"])
        .await
        .expect_code(0);
    let gate = ws.run(&["audit", "--min-coverage", "0.95"]).await;
    gate.expect_code(1);
    assert!(
        gate.stderr.contains("below the required 95.0%"),
        "{}",
        gate.stderr
    );

    // Text fits 100 columns; CSV has one row per image listed; Markdown has the sections.
    let text = ws
        .run(&["blast-radius", "--base-name", "docker.io/library/debian"])
        .await
        .expect_code(0)
        .stdout
        .clone();
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "too wide: {line:?}");
    }
    assert!(
        text.contains("Coverage gap: 9 unstamped image(s)"),
        "{text}"
    );
    let csv = ws
        .run(&[
            "blast-radius",
            "--base-name",
            "docker.io/library/debian",
            "--format",
            "csv",
        ])
        .await
        .expect_code(0)
        .stdout
        .clone();
    let debian = want["base_digest"]["artifacts"].as_array().unwrap().len();
    assert_eq!(csv.lines().count(), 1 + debian + 9, "{csv}");
    let md = ws
        .run(&[
            "blast-radius",
            "--owner",
            SECOND_OWNER,
            "--format",
            "markdown",
        ])
        .await
        .expect_code(0)
        .stdout
        .clone();
    assert!(
        md.contains("#### By owner") && md.contains("#### Coverage gap"),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ground_truth_on_ferro() {
    check(ferro().await, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ground_truth_on_docker_registry() {
    check(distribution(Auth::None).await, true).await;
}
