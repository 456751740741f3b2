//! Two `houba apply --auto` started at once on the same policies and destination: both end
//! as documented (the second waits for the lock, says who holds it since when, then plans
//! what is left: nothing), and the next plan is empty. Five rounds per destination registry.

mod support;

use support::houba::{Policy, Run, Workspace, push_upstream};
use support::{Auth, distribution, ferro};

async fn output(ws: &Workspace) -> Run {
    let out = ws
        .command(&["apply", "--auto", "--format", "json"])
        .output()
        .await
        .expect("houba runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn race(destination_host: &str, upstream_host: &str) {
    let ws = Workspace::new(upstream_host, &[("dest", destination_host)]);
    let mut waited = 0;
    for round in 0..5 {
        // A new repository each round, so each round has work to race over.
        let mut policy = Policy::new(
            &format!("busybox-{round}"),
            "busybox",
            r"^1\.3[678]\.\d+$",
            "dest",
        );
        policy.repository = format!("busybox-{round}");
        policy.aliases = vec!["latest".into()];
        ws.policy(&format!("busybox-{round}"), &policy.yaml());
        let (a, b) = tokio::join!(output(&ws), output(&ws));
        let mut done = 0;
        for r in [&a, &b] {
            r.expect_code(0);
            let report = r.json();
            assert_eq!(report["success"], true, "{report:#}");
            done += report["results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["outcome"] == "done")
                .count();
            if r.stderr.contains("another apply holds the lock") {
                assert!(
                    r.stderr.contains("since ") && r.stderr.contains("pid "),
                    "{}",
                    r.stderr
                );
                assert!(report["lock_wait_seconds"].as_f64().unwrap() > 0.0);
                waited += 1;
            }
        }
        // 3 placements + 1 alias, applied exactly once between the two.
        assert_eq!(done, 4, "round {round}:\n{}\n{}", a.stdout, b.stdout);
        let plan = ws.plan_text().await;
        assert!(
            plan.contains("No changes. The registries match the policies."),
            "round {round}: a plan after both applies must be empty:\n{plan}"
        );
    }
    assert!(
        waited > 0,
        "in five rounds, one apply waited for the other at least once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_applies_take_turns() {
    let upstream = ferro().await;
    for tag in ["1.36.0", "1.37.0", "1.38.0"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let oci = ferro().await;
    race(oci.host(), upstream.host()).await;
    let cncf = distribution(Auth::None).await;
    race(cncf.host(), upstream.host()).await;
}

/// Applies that share no file (two machines, or two cache directories) take no lock: their
/// writes themselves must be race-safe. Both succeed and the end state is that of one apply.
async fn race_unlocked(destination_host: &str, upstream_host: &str) {
    let ws = Workspace::new(upstream_host, &[("dest", destination_host)]);
    for round in 0..5 {
        let mut policy = Policy::new(
            &format!("busybox-{round}"),
            "busybox",
            r"^1\.3[678]\.\d+$",
            "dest",
        );
        policy.repository = format!("busybox-{round}");
        policy.aliases = vec!["latest".into()];
        ws.policy(&format!("busybox-{round}"), &policy.yaml());
        let run = |cache: &str| {
            let mut c = ws.command(&["apply", "--auto", "--format", "json"]);
            c.env("HOUBA_CACHE_DIR", ws.path(cache));
            c.output()
        };
        let (a, b) = tokio::join!(run("cache-a"), run("cache-b"));
        for out in [a.unwrap(), b.unwrap()] {
            assert!(
                out.status.success(),
                "round {round}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let plan = ws.plan_text().await;
        assert!(
            plan.contains("No changes. The registries match the policies."),
            "round {round}:\n{plan}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_applies_without_a_shared_lock_converge() {
    let upstream = ferro().await;
    for tag in ["1.36.0", "1.37.0", "1.38.0"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let oci = ferro().await;
    race_unlocked(oci.host(), upstream.host()).await;
    let cncf = distribution(Auth::None).await;
    race_unlocked(cncf.host(), upstream.host()).await;
}
