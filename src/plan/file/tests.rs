//! Unit tests.

use super::*;
use crate::plan::model::{
    Action, Address, Build, Content, Drift, EvidencePlan, Header, Location, Note, Operation, Place,
    PriorStamp, Source, StampChange,
};
use crate::policy::resolved::TransformStep;

fn loc(tag: &str) -> Location {
    Location {
        registry: "local".into(),
        display: "registry.local:5000".into(),
        repository: "demo/busybox".into(),
        tag: tag.into(),
    }
}

fn header(tag: &str) -> Header {
    Header {
        address: Address::artifact(
            "busybox",
            "stable",
            "eu",
            "registry.local:5000",
            "demo/busybox",
            tag,
        ),
        destination: loc(tag),
        before: Some(format!("sha256:{}", "1".repeat(64))),
        after: None,
        depends_on: vec![],
        evidence: EvidencePlan::default(),
    }
}

#[test]
fn every_operation_round_trips_through_the_file_format() {
    let place = Place {
        source: Source {
            location: loc("1.37.0"),
            digest: format!("sha256:{}", "a".repeat(64)),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
        },
        content: Content::Build(Build {
            recipe: format!("sha256:{}", "r".repeat(64)),
            steps: vec![
                TransformStep::SetTimezone {
                    zone: "Europe/Paris".into(),
                },
                TransformStep::InjectCa {
                    certs: vec!["corp".into()],
                },
            ],
            platforms: vec!["linux/amd64".into()],
        }),
        annotations: BTreeMap::from([("io.houba.policy".into(), "busybox".into())]),
    };
    let mut alias = header("latest");
    alias.depends_on = vec![header("1.37.0-eu").address];
    let plan = Plan {
        houba_version: "0.1.0".into(),
        inputs_digest: "sha256:00".into(),
        shard: Some((1, 3)),
        drift: vec![Drift {
            address: None,
            location: loc("debug"),
            digest: Some("sha256:dd".into()),
            finding: Finding::Bypass,
        }],
        actions: vec![
            Action {
                header: header("1.37.0-eu"),
                operation: Operation::Replace {
                    place: place.clone(),
                    reason: ReplaceReason::RecipeChanged,
                    prior: Some(PriorStamp {
                        base_digest: "sha256:bb".into(),
                        recipe: None,
                    }),
                },
            },
            Action {
                header: header("1.36.0-eu"),
                operation: Operation::Restamp {
                    source: place.source.clone(),
                    changed: vec![StampChange {
                        key: "owners".into(),
                        before: "a".into(),
                        after: "a,b".into(),
                    }],
                    annotations: BTreeMap::new(),
                },
            },
            Action {
                header: alias,
                operation: Operation::Alias {
                    target: header("1.37.0-eu").address,
                    target_tag: "1.37.0-eu".into(),
                    target_digest: None,
                    current_tag: Some("1.36.0-eu".into()),
                    reason: AliasReason::TargetChanged,
                },
            },
            Action {
                header: Header {
                    evidence: EvidencePlan {
                        sbom: vec!["spdx".into(), "cyclonedx".into()],
                        signature: true,
                        upstream: 2,
                    },
                    ..header("1.34.0-eu")
                },
                operation: Operation::Attach,
            },
            Action {
                header: header("1.35.0-eu"),
                operation: Operation::Prune {
                    mode: PruneMode::Mark,
                    reason: PruneReason::Orphaned,
                },
            },
        ],
        notes: vec![Note {
            address: Address::import("busybox", "stable"),
            message: "names: `x` is not present upstream; skipped".into(),
        }],
        requests: BTreeMap::new(),
        managed_tags: BTreeMap::from([("registry.local:5000/demo/busybox".into(), 4)]),
    };
    let bytes = to_bytes(&plan);
    let back = from_bytes("plan.json", &bytes).unwrap();
    assert_eq!(back, plan);
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(value["format_version"], FILE_FORMAT_VERSION);
    assert_eq!(value["actions"][0]["operation"], "replace");
    assert_eq!(
        value["actions"][0]["place"]["content"]["build"]["steps"][0]["setTimezone"]["zone"],
        "Europe/Paris"
    );
}

#[test]
fn foreign_versions_and_broken_files_are_refused() {
    let err = from_bytes("p.json", br#"{"format_version":"9.0"}"#).unwrap_err();
    assert!(matches!(err, PlanFileError::Version { .. }), "{err}");
    let err = from_bytes("p.json", b"not json").unwrap_err();
    assert!(
        err.to_string().contains("is not a houba plan file"),
        "{err}"
    );
    let bad_address = br#"{"format_version":"1.1","houba_version":"0","inputs_digest":"sha256:00","actions":[{"address":"a b","destination":{"registry":"r","display":"r","repository":"x","tag":"t"},"before":null,"after":null,"depends_on":[],"operation":"prune","mode":"delete","reason":"orphaned"}]}"#;
    let err = from_bytes("p.json", bad_address).unwrap_err();
    assert!(err.to_string().contains("is not an address"), "{err}");
}
