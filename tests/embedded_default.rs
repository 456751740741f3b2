//! The embedded default: README's main command runs houba on `policies/` against the
//! generated upstream layouts in `testdata/upstream/`, with nothing to start by hand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the repository's default setup (houba.toml, policies, upstream layouts) in a
/// scratch directory, so the test never writes into the work tree.
fn scratch_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root();
    std::fs::copy(root.join("houba.toml"), dir.path().join("houba.toml")).unwrap();
    copy_dir(&root.join("policies"), &dir.path().join("policies"));
    copy_dir(
        &root.join("testdata/upstream"),
        &dir.path().join("testdata/upstream"),
    );
    dir
}

fn houba(dir: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_houba"))
        .args(args)
        .current_dir(dir)
        .env("HOUBA_CACHE_DIR", cache)
        .env_remove("HOUBA_REGISTRIES")
        .env_remove("HOUBA_CONFIG")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn first_run_places_everything_and_second_run_has_no_changes() {
    let dir = scratch_checkout();
    let cache = tempfile::tempdir().unwrap();

    let plan = houba(dir.path(), cache.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    let out = text(&plan);
    assert!(
        out.contains(
            "Plan: 3 to copy, 2 to build, 0 to replace, 0 to restamp, 3 to alias, 0 to prune."
        ),
        "{out}"
    );
    assert!(out.contains("# busybox/stable/default[local/mirror/busybox:1.37.0] will be copied"));
    assert!(out.contains(
        "# debian-tz/bookworm/eu[local/mirror/debian-tz:bookworm-slim-eu] will be built"
    ));

    let apply = houba(dir.path(), cache.path(), &["apply", "--auto"]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(
        text(&apply).contains("Apply complete: 8 done, 0 failed"),
        "{}",
        text(&apply)
    );

    let again = houba(dir.path(), cache.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("No changes. The registries match the policies."));

    // The placed images are readable by a tool nobody here wrote, and carry the stamp.
    let layout = dir.path().join("testdata/work/local-registry/mirror");
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:latest", layout.join("busybox").display()))
        .output()
        .expect("skopeo is installed (scripts/test installs it)");
    assert!(raw.status.success(), "{}", text(&raw));
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["annotations"]["io.houba.policy"], "busybox");
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.name"],
        "docker.io/library/busybox:1.37.0"
    );
}

#[test]
fn committed_upstream_layouts_are_what_the_generator_writes() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("docker.io");
    let status = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "demo_upstream", "--"])
        .arg(&target)
        .current_dir(repo_root())
        .status()
        .unwrap();
    assert!(status.success());
    let committed = repo_root().join("testdata/upstream/docker.io");
    let mut stale = Vec::new();
    compare(&committed, &target, &mut stale);
    compare(&target, &committed, &mut stale);
    assert!(
        stale.is_empty(),
        "testdata/upstream is stale ({stale:?}); regenerate it with \
         `cargo run --example demo_upstream -- testdata/upstream/docker.io`"
    );
}

fn compare(a: &Path, b: &Path, stale: &mut Vec<String>) {
    for entry in std::fs::read_dir(a).unwrap() {
        let entry = entry.unwrap();
        let other = b.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if other.is_dir() {
                compare(&entry.path(), &other, stale);
            } else {
                stale.push(other.display().to_string());
            }
        } else if std::fs::read(entry.path()).ok() != std::fs::read(&other).ok() {
            stale.push(entry.path().display().to_string());
        }
    }
}
