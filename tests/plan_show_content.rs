//! `houba plan --show-content` on the repository's default setup (`houba.toml`, `policies/`,
//! the generated upstream layouts in `testdata/upstream/`): each rebuild lists the files its
//! steps change, read from the real base layers, with unified diffs of text files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
        "debian-tz/bookworm/eu[local/mirror/debian-tz:bookworm-slim-eu] (steps: setTimezone, files of linux/amd64)",
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
