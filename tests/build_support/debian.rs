//! A real Debian base image for the tests: a `debootstrap --variant=minbase` rootfs (with
//! tzdata and ca-certificates) packed by umoci into an OCI layout, both cached under
//! `testdata/work/` between runs because debootstrap takes minutes.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::run;

pub const SUITE: &str = "bookworm";
const VARIANT: &str = "minbase";
/// Bump when the packing below changes, so cached images are rebuilt.
const PACKING_VERSION: &str = "v2";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// A one-line source and a deb822 source added in a second layer, so both formats are
/// rewritten by the tests.
pub const EXTRA_LIST: &str = "deb [arch=amd64] http://deb.debian.org/debian bookworm contrib\n";
pub const DEB822_SOURCES: &str = "Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n";

pub fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/work")
}

/// The Debian mirror this machine's apt uses (so debootstrap reaches what apt reaches), or
/// deb.debian.org.
fn host_mirror() -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            let candidates: Vec<&str> = if let Some(v) = line.strip_prefix("URIs:") {
                v.split_whitespace().collect()
            } else if line.starts_with("deb ") {
                line.split_whitespace()
                    .skip(1)
                    .skip_while(|t| t.starts_with('['))
                    .take(1)
                    .collect()
            } else {
                Vec::new()
            };
            if let Some(uri) = candidates
                .into_iter()
                .find(|u| u.starts_with("http") && u.trim_end_matches('/').ends_with("/debian"))
            {
                return uri.to_string();
            }
        }
    }
    DEFAULT_MIRROR.to_string()
}

/// The cached rootfs, made with debootstrap when missing (a failure fails the test: the
/// Debian tests are never skipped).
pub fn rootfs() -> PathBuf {
    let dir = work_dir()
        .join("debootstrap")
        .join(format!("{SUITE}-{VARIANT}"));
    if dir.join("etc/debian_version").exists() {
        return dir;
    }
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    let mirror = host_mirror();
    let out = Command::new("debootstrap")
        .arg(format!("--variant={VARIANT}"))
        .arg("--include=tzdata,ca-certificates")
        .arg(SUITE)
        .arg(&partial)
        .arg(&mirror)
        .output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "debootstrap {SUITE} from {mirror} failed ({}); it needs root and the Debian mirror.\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run debootstrap ({e}); install it (apt-get install debootstrap)"),
    }
    std::fs::rename(&partial, &dir).unwrap();
    dir
}

/// An OCI layout holding `base`: the rootfs as one layer plus a small layer of extra apt
/// sources, packed by umoci.
pub fn base_layout() -> PathBuf {
    let layout = work_dir()
        .join("images")
        .join(format!("{SUITE}-{VARIANT}-{PACKING_VERSION}"));
    if layout.join("index.json").exists() {
        return layout;
    }
    let rootfs = rootfs();
    let partial = layout.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).unwrap();
    let image = format!("{}:base", partial.join("oci").display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(partial.join("oci")));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci")
        .args(["insert", "--image", &image])
        .arg(&rootfs)
        .arg("/"));
    let extra = partial.join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("extra.list"), EXTRA_LIST).unwrap();
    std::fs::write(extra.join("debian.sources"), DEB822_SOURCES).unwrap();
    run(Command::new("umoci")
        .args(["insert", "--image", &image])
        .arg(&extra)
        .arg("/etc/apt/sources.list.d"));
    std::fs::rename(partial.join("oci"), &layout).unwrap();
    let _ = std::fs::remove_dir_all(&partial);
    layout
}
