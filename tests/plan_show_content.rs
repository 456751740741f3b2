//! `houba plan --show-content` on the repository's default setup (`houba.toml`, `policies/`,
//! the generated upstream layouts in `testdata/upstream/`): each rebuild lists the files its
//! steps change, read from the real base layers, with unified diffs of text files.

#[allow(unused_imports)]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::houba::Workspace;
use support::images::{self, OCI_INDEX};

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

fn scratch_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("houba.toml"), dir.path().join("houba.toml")).unwrap();
    copy_dir(&root.join("policies"), &dir.path().join("policies"));
    copy_dir(
        &root.join("testdata/upstream"),
        &dir.path().join("testdata/upstream"),
    );
    dir
}

fn houba(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_houba"))
        .args(args)
        .current_dir(dir)
        .env("HOUBA_CACHE_DIR", dir.join("cache"))
        .env("NO_COLOR", "1")
        .env_remove("HOUBA_REGISTRIES")
        .env_remove("HOUBA_CONFIG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn each_rebuild_lists_the_files_its_steps_change() {
    let dir = scratch_checkout();
    let text = houba(dir.path(), &["plan", "--show-content"]);
    assert_eq!(
        text.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let out = stdout(&text);
    let section = out
        .split("Content changes of the rebuilds (--show-content):")
        .nth(1)
        .unwrap_or_else(|| panic!("no content section in:\n{out}"));
    for expected in [
        "debian-tz/bookworm/eu[local/mirror/debian-tz:bookworm-slim-eu] (steps: setTimezone, files of linux/amd64, linux/arm64: the same changes on each of these 2 platforms)",
        "~ /etc/localtime (symlink /usr/share/zoneinfo/Etc/UTC → /usr/share/zoneinfo/Europe/Paris)",
        "~ /etc/timezone (text, +1 -1 lines)",
        "--- a/etc/timezone",
        "-Etc/UTC",
        "+Europe/Paris",
        "+ env TZ=Europe/Paris",
        "debian-tz/bookworm/us[local/mirror/debian-tz:bookworm-slim-us]",
        "+America/New_York",
    ] {
        assert!(
            section.contains(expected),
            "missing `{expected}` in:\n{section}"
        );
    }
    // Copies change nothing inside the image and are not listed.
    assert!(!section.contains("busybox"), "{section}");

    let markdown = stdout(&houba(
        dir.path(),
        &["plan", "--show-content", "--format", "markdown"],
    ));
    assert!(
        markdown.contains("<details><summary>diff /etc/timezone</summary>"),
        "{markdown}"
    );
    assert_eq!(
        markdown.matches("<details><summary>diff ").count(),
        2,
        "{markdown}"
    );

    let json = houba(dir.path(), &["plan", "--show-content", "--format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&json.stderr).contains("--show-content"));
}

/// An uncompressed layer with its directories, then its files.
fn layer_with_directories(dirs: &[&str], files: &[(&str, &[u8])]) -> images::Blob {
    let mut builder = tar::Builder::new(Vec::new());
    for dir in dirs {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, dir, std::io::empty())
            .unwrap();
    }
    for (path, content) in files {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, path, *content).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    images::Blob {
        diff_id: Some(houba::registry::digest::sha256_digest(&tar)),
        ..images::Blob::new(OCI_LAYER_TAR, tar)
    }
}

const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// A multi-platform base whose `/etc/timezone` is `time_zone(arch)` on each platform.
fn multi_platform_base(time_zone: impl Fn(&str) -> &'static str) -> images::Built {
    let children = ["amd64", "arm64", "s390x"]
        .iter()
        .map(|arch| {
            let layer = layer_with_directories(
                &[
                    "etc/",
                    "usr/",
                    "usr/share/",
                    "usr/share/zoneinfo/",
                    "usr/share/zoneinfo/Europe/",
                    "app/",
                ],
                &[
                    ("etc/timezone", time_zone(arch).as_bytes()),
                    ("usr/share/zoneinfo/Europe/Paris", b"TZif2 Paris"),
                    ("app/arch", arch.as_bytes()),
                ],
            );
            images::oci_image(&format!("tzbase {arch}"), arch, vec![layer])
        })
        .collect();
    images::index(OCI_INDEX, children)
}

/// Every platform of a multi-platform rebuild is covered: platforms whose base files differ
/// get a list each, platforms that change alike are named together, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_platform_of_a_multi_platform_rebuild_is_covered() {
    let upstream = support::ferro().await;
    let ws = Workspace::new(upstream.host(), &[("dest", "127.0.0.1:9")]);
    ws.policy(
        "tz",
        "apiVersion: houba.io/v1alpha1\nkind: MirrorPolicy\nmetadata:\n  name: tz\nspec:\n  source:\n    registry: docker.io\n    repository: library/tzbase\n  imports:\n    - name: stable\n      tags:\n        names: [\"1\"]\n      owners: [\"group:default/platform\"]\n      transform:\n        - setTimezone: { zone: Europe/Paris }\n      destinations:\n        - { registry: dest, project: mirror, repository: tzbase }\n",
    );
    // arm64's base says `UTC`, the two others `Etc/UTC`: two different diffs.
    let base = multi_platform_base(|arch| {
        if arch == "arm64" {
            "UTC\n"
        } else {
            "Etc/UTC\n"
        }
    });
    images::push_image(upstream.client().as_ref(), "library/tzbase", "1", &base)
        .await
        .unwrap();
    // The destination is never reached: a plan against an unreachable one fails, so the
    // destination is a layout directory.
    ws.write_config("");
    let config = std::fs::read_to_string(ws.config()).unwrap().replace(
        "[registries.dest]\nhost = \"127.0.0.1:9\"\ntls_verify = false\n",
        &format!(
            "[registries.dest]\nlayout = \"{}\"\n",
            ws.path("dest").display()
        ),
    );
    std::fs::write(ws.config(), config).unwrap();
    let run = ws.run(&["plan", "--show-content"]).await;
    let out = run.expect_code(0).stdout.clone();
    let address = "tz/stable/default[dest/mirror/tzbase:1]";
    assert!(
        out.contains(&format!(
            "{address} (steps: setTimezone, files of linux/amd64, linux/s390x: the same changes on each of these 2 platforms)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{address} (steps: setTimezone, files of linux/arm64)"
        )),
        "{out}"
    );
    assert_eq!(
        out.matches("-Etc/UTC").count(),
        1,
        "said once for amd64 and s390x: {out}"
    );
    assert_eq!(out.matches("-UTC").count(), 1, "arm64's own diff: {out}");

    // Every platform alike: one list, for all of them.
    let same = multi_platform_base(|_| "Etc/UTC\n");
    images::push_image(upstream.client().as_ref(), "library/tzbase", "1", &same)
        .await
        .unwrap();
    let markdown = ws
        .run(&["plan", "--show-content", "--format", "markdown"])
        .await
        .expect_code(0)
        .stdout
        .clone();
    assert!(
        markdown.contains("files of linux/amd64, linux/arm64, linux/s390x: the same changes on each of these 3 platforms"),
        "{markdown}"
    );
    assert_eq!(
        markdown
            .matches("<details><summary>diff /etc/timezone</summary>")
            .count(),
        1,
        "{markdown}"
    );
}
