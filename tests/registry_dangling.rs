//! A tag that distribution lists with no manifest behind it (what an interrupted delete leaves:
//! the tag link stays, the revision link or the manifest blob is gone) is shown by the plan as
//! drift with the action that repairs it, and the next apply converges: a desired tag is placed
//! again, an alias re-pointed, a tag no policy asks for removed from the listing.

mod support;

use serde_json::Value;
use support::houba::{Policy, Workspace, assert_complete, push_upstream, skopeo_inspect};
use support::{Auth, distribution, ferro};

const REPOSITORY: &str = "mirror/busybox";

/// The storage directory of one repository in distribution's filesystem driver.
fn repository_dir(storage: &std::path::Path) -> std::path::PathBuf {
    storage
        .join("docker/registry/v2/repositories")
        .join(REPOSITORY)
}

/// The tags of the repository, without the referrers fallback tags of the evidence.
async fn image_tags(registry: &dyn houba::registry::Registry) -> Vec<String> {
    let mut tags: Vec<String> = registry
        .list_tags(REPOSITORY)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| !t.starts_with("sha256-"))
        .collect();
    tags.sort();
    tags
}

fn drift_kinds(plan: &Value) -> Vec<(String, String, Value)> {
    let mut out: Vec<_> = plan["drift"]
        .as_array()
        .expect("drift array")
        .iter()
        .map(|d| {
            (
                d["location"]["tag"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                d["kind"].as_str().unwrap_or_default().to_string(),
                d["digest"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn action_of<'a>(plan: &'a Value, tag: &str) -> &'a Value {
    plan["actions"]
        .as_array()
        .expect("actions array")
        .iter()
        .find(|a| a["destination"]["tag"] == tag)
        .unwrap_or_else(|| panic!("no action for {tag}: {plan:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_tags_are_shown_and_repaired() {
    let upstream = ferro().await;
    let destination = distribution(Auth::None).await;
    for (i, tag) in ["1.0.0", "1.0.1", "1.0.2"].iter().enumerate() {
        push_upstream(upstream.client().as_ref(), "busybox", tag, i as u32).await;
    }
    let host = destination.host().to_string();
    let ws = Workspace::new(upstream.host(), &[("dest", &host)]);
    let mut policy = Policy::new("busybox", "busybox", r"^1\.0\.\d+$", "dest");
    policy.aliases = vec!["latest".into()];
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    let client = destination.client();
    let digest_of = async |tag: &str| {
        client
            .head_manifest(REPOSITORY, tag)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{tag} placed"))
            .digest
    };
    let d101 = digest_of("1.0.1").await;
    let d102 = digest_of("1.0.2").await;
    assert_eq!(digest_of("latest").await, d102, "latest follows 1.0.2");

    // 1.0.2 leaves the selection; its content goes dangling the way the prune race leaves a
    // tag (the revision link deleted), which takes `latest` (same digest) with it. 1.0.1 goes
    // dangling the other way: its manifest blob is gone.
    policy.include = r"^1\.0\.[01]$".into();
    ws.policy("busybox", &policy.yaml());
    let storage = destination
        .dir
        .as_ref()
        .expect("distribution keeps its storage in the scratch directory")
        .path()
        .join("storage");
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    std::fs::remove_dir_all(
        repository_dir(&storage)
            .join("_manifests/revisions/sha256")
            .join(hex(&d102)),
    )
    .expect("remove the revision link of 1.0.2");
    let h101 = hex(&d101);
    std::fs::remove_dir_all(
        storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&h101[..2])
            .join(&h101),
    )
    .expect("remove the manifest blob of 1.0.1");
    for tag in ["1.0.1", "1.0.2", "latest"] {
        assert!(
            client
                .head_manifest(REPOSITORY, tag)
                .await
                .unwrap()
                .is_none(),
            "{tag}: no manifest behind it"
        );
    }
    assert_eq!(
        image_tags(client.as_ref()).await,
        ["1.0.0", "1.0.1", "1.0.2", "latest"],
        "every tag still listed"
    );

    // The plan names each dangling tag and what repairs it.
    let plan = ws.plan_json(&[]).await;
    assert_eq!(
        drift_kinds(&plan),
        [
            ("1.0.1".into(), "dangling".into(), Value::Null),
            ("1.0.2".into(), "dangling".into(), Value::Null),
            ("latest".into(), "dangling".into(), Value::Null),
        ],
        "{plan:#}"
    );
    let drift_address = |tag: &str| {
        plan["drift"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["location"]["tag"] == tag)
            .map(|d| d["address"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(drift_address("1.0.1"), policy.address(&host, "1.0.1"));
    assert_eq!(drift_address("latest"), policy.address(&host, "latest"));
    assert_eq!(drift_address("1.0.2"), format!("{host}/{REPOSITORY}:1.0.2"));
    let place = action_of(&plan, "1.0.1");
    assert_eq!(
        (&place["action"], &place["before"]),
        (&Value::from("copy"), &Value::Null),
        "{place:#}"
    );
    let alias = action_of(&plan, "latest");
    assert_eq!(alias["action"], "alias", "{alias:#}");
    assert_eq!(alias["after"], Value::from(d101.clone()), "{alias:#}");
    let prune = action_of(&plan, "1.0.2");
    assert_eq!(
        (&prune["action"], &prune["before"], &prune["reason"]),
        (
            &Value::from("prune"),
            &Value::Null,
            &Value::from("dangling")
        ),
        "{prune:#}"
    );
    assert_eq!(prune["prune_mode"], "delete", "{prune:#}");
    assert_eq!(plan["actions"].as_array().unwrap().len(), 3, "{plan:#}");
    let text = ws.plan_text().await;
    for tag in ["1.0.1", "1.0.2", "latest"] {
        assert!(
            text.contains(&format!(
                "# {host}/{REPOSITORY}:{tag} is listed by the registry but has no manifest"
            )),
            "{tag}:\n{text}"
        );
    }
    assert!(text.contains("digest  = (no manifest)"), "{text}");
    assert!(
        text.contains(
            "Plan: 1 to copy, 0 to build, 0 to replace, 0 to restamp, 1 to alias, 1 to prune."
        ),
        "{text}"
    );
    let drift = ws.run(&["drift"]).await;
    drift.expect_code(2);

    // apply repairs; the next plan has nothing to do.
    ws.apply_and_converge().await;
    assert_eq!(
        image_tags(client.as_ref()).await,
        ["1.0.0", "1.0.1", "latest"],
        "the listing of 1.0.2 is gone, the others are served"
    );
    ws.run(&["drift"]).await.expect_code(0);
    for tag in ["1.0.0", "1.0.1", "latest"] {
        let inspected = skopeo_inspect(&host, &format!("{REPOSITORY}:{tag}"))
            .await
            .unwrap_or_else(|e| panic!("skopeo inspect {tag}: {e}"));
        assert!(
            inspected["Layers"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
        );
        let raw = support::houba::skopeo_raw(&host, &format!("{REPOSITORY}:{tag}")).await;
        assert!(assert_complete(client.as_ref(), REPOSITORY, &raw).await > 0);
    }
    assert_eq!(digest_of("1.0.1").await, d101, "placed again, same bytes");
    assert_eq!(digest_of("latest").await, d101, "latest follows 1.0.1");
}
