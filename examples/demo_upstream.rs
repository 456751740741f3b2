//! Writes the embedded default's upstream registries: small, deterministic images of
//! `docker.io/library/busybox` and `docker.io/library/debian` as OCI image layouts, one
//! directory per repository, so that `houba plan` / `houba apply` run with nothing to start.
//!
//! The images are built in code (same bytes on every machine) with real-looking root
//! filesystems: `/etc/os-release`, a CA bundle, deb822 apt sources and TZif zone files.
//!
//!     cargo run --example demo_upstream -- testdata/upstream/docker.io
//!
//! The output is committed under `testdata/upstream/`; a test regenerates it and fails when
//! the committed copy is stale.

#[path = "../tests/support/images.rs"]
mod images;

use std::io::Write;
use std::path::{Path, PathBuf};

use houba::registry::Registry;
use houba::registry::layout::LayoutRegistry;
use images::{Blob, Built, OCI_INDEX, OCI_LAYER_GZIP, index, oci_image};

/// A public test certificate standing in for a distribution's root store.
const DISTRIBUTION_ROOT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIB1DCCAXmgAwIBAgIUcmjdXOrl1widFuSdIkNt+w7N/ZswCgYIKoZIzj0EAwIw
PzEZMBcGA1UECgwQRGViaWFuIERlbW8gUm9vdDEiMCAGA1UEAwwZRGVtbyBEaXN0
cmlidXRpb24gUm9vdCBDQTAeFw0yNjExMjMxODQ3MDhaFw00NjExMTgxODQ3MDha
MD8xGTAXBgNVBAoMEERlYmlhbiBEZW1vIFJvb3QxIjAgBgNVBAMMGURlbW8gRGlz
dHJpYnV0aW9uIFJvb3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATpS2Sg
K8a/YIS52mlIhno9VPNx2sb0SojKK6MbY6Ppem2Szd5I4qe8a2ayjbYn2bWrTis4
baVFMKY2/RM7T22Yo1MwUTAdBgNVHQ4EFgQUhDelCSy6g+CUDL+s45CIcZQEDrYw
HwYDVR0jBBgwFoAUhDelCSy6g+CUDL+s45CIcZQEDrYwDwYDVR0TAQH/BAUwAwEB
/zAKBggqhkjOPQQDAgNJADBGAiEA6RxiVmBHYFi104kag6pVa8qD6yxWpW/fq4/a
JsMgV40CIQCNTFWGna0K5IP4bo4EU46BjBJOjf5cxNfE8SvaWER13A==
-----END CERTIFICATE-----
";

/// One entry of a root filesystem layer.
enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, Vec<u8>, u32),
    Symlink(&'a str, &'a str),
}

/// A gzip tar layer with directories, files and symlinks, fixed metadata (mtime 0, root).
fn rootfs_layer(entries: &[Entry<'_>]) -> Blob {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                header.set_cksum();
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .expect("tar in memory");
            }
            Entry::File(path, content, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(content.len() as u64);
                header.set_cksum();
                builder
                    .append_data(&mut header, path, content.as_slice())
                    .expect("tar in memory");
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, path, target)
                    .expect("tar in memory");
            }
        }
    }
    let tar = builder.into_inner().expect("tar in memory");
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).expect("gzip in memory");
    let mut blob = Blob::new(OCI_LAYER_GZIP, gz.finish().expect("gzip in memory"));
    blob.diff_id = Some(houba::registry::digest::sha256_digest(&tar));
    blob
}

/// A TZif version 2 file with no transitions: one local time type and the POSIX TZ string
/// footer that libc uses for every date, which is what `date +%Z` reads.
fn tzif(abbreviation: &str, utoff_seconds: i32, posix_tz: &str) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, abbreviation: &str, utoff: i32) {
        out.extend_from_slice(b"TZif2");
        out.extend_from_slice(&[0u8; 15]);
        let chars = abbreviation.len() as u32 + 1;
        // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
        for n in [0u32, 0, 0, 0, 1, chars] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&utoff.to_be_bytes());
        out.push(0); // is_dst
        out.push(0); // abbreviation index
        out.extend_from_slice(abbreviation.as_bytes());
        out.push(0);
    }
    let mut out = Vec::new();
    block(&mut out, abbreviation, utoff_seconds);
    block(&mut out, abbreviation, utoff_seconds);
    out.extend_from_slice(format!("\n{posix_tz}\n").as_bytes());
    out
}

fn os_release(pretty: &str, version_id: &str, codename: &str) -> Vec<u8> {
    format!(
        "PRETTY_NAME=\"{pretty}\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"{version_id}\"\n         VERSION=\"{version_id} ({codename})\"\nVERSION_CODENAME={codename}\nID=debian\n         HOME_URL=\"https://www.debian.org/\"\n"
    )
    .into_bytes()
}

fn debian(arch: &str, codename: &str, version: &str, point: &str) -> Built {
    let sources = format!(
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {codename} {codename}-updates\n         Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n         Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: {codename}-security\n         Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    );
    let layer = rootfs_layer(&[
        Entry::Dir("etc"),
        Entry::Dir("etc/apt"),
        Entry::Dir("etc/apt/sources.list.d"),
        Entry::File("etc/apt/sources.list.d/debian.sources", sources.into_bytes(), 0o644),
        Entry::File("etc/debian_version", format!("{point}\n").into_bytes(), 0o644),
        Entry::Symlink("etc/localtime", "/usr/share/zoneinfo/Etc/UTC"),
        Entry::File("etc/os-release", os_release(&format!("Debian GNU/Linux {version} ({codename})"), version, codename), 0o644),
        Entry::Dir("etc/ssl"),
        Entry::Dir("etc/ssl/certs"),
        Entry::File("etc/ssl/certs/ca-certificates.crt", DISTRIBUTION_ROOT_PEM.as_bytes().to_vec(), 0o644),
        Entry::File("etc/timezone", b"Etc/UTC\n".to_vec(), 0o644),
        Entry::Dir("usr"),
        Entry::Dir("usr/local"),
        Entry::Dir("usr/local/share"),
        Entry::Dir("usr/local/share/ca-certificates"),
        Entry::Dir("usr/share"),
        Entry::Dir("usr/share/zoneinfo"),
        Entry::Dir("usr/share/zoneinfo/America"),
        Entry::File("usr/share/zoneinfo/America/New_York", tzif("EST", -5 * 3600, "EST5EDT,M3.2.0,M11.1.0"), 0o644),
        Entry::Dir("usr/share/zoneinfo/Asia"),
        Entry::File("usr/share/zoneinfo/Asia/Tokyo", tzif("JST", 9 * 3600, "JST-9"), 0o644),
        Entry::Dir("usr/share/zoneinfo/Etc"),
        Entry::File("usr/share/zoneinfo/Etc/UTC", tzif("UTC", 0, "UTC0"), 0o644),
        Entry::Dir("usr/share/zoneinfo/Europe"),
        Entry::File("usr/share/zoneinfo/Europe/Paris", tzif("CET", 3600, "CET-1CEST,M3.5.0,M10.5.0/3"), 0o644),
        Entry::Dir("var"),
        Entry::Dir("var/lib"),
        Entry::Dir("var/lib/dpkg"),
        Entry::File("var/lib/dpkg/status", format!("Package: base-files\nStatus: install ok installed\nArchitecture: {arch}\nVersion: {version}\n").into_bytes(), 0o644),
    ]);
    oci_image(&format!("debian:{codename}-slim"), arch, vec![layer])
}

fn busybox(arch: &str, version: &str) -> Built {
    let layer = rootfs_layer(&[
        Entry::Dir("bin"),
        Entry::File(
            "bin/busybox",
            format!("#!/bin/sh\n# busybox {version} ({arch})\n").into_bytes(),
            0o755,
        ),
        Entry::Symlink("bin/sh", "busybox"),
        Entry::Dir("etc"),
        Entry::File(
            "etc/os-release",
            format!("NAME=\"BusyBox\"\nID=busybox\nVERSION_ID=\"{version}\"\n").into_bytes(),
            0o644,
        ),
    ]);
    oci_image(&format!("busybox:{version}"), arch, vec![layer])
}

fn multi(build: impl Fn(&str) -> Built) -> Built {
    index(
        OCI_INDEX,
        ["amd64", "arm64"].iter().map(|a| build(a)).collect(),
    )
}

async fn write(root: &Path) -> houba::registry::Result<()> {
    let registry = LayoutRegistry::new(root.to_path_buf());
    let r: &dyn Registry = &registry;
    for version in ["1.36.0", "1.36.1", "1.37.0"] {
        images::push(
            r,
            "library/busybox",
            version,
            &multi(|a| busybox(a, version)),
        )
        .await?;
    }
    // Tags a selection must leave out: a prerelease-looking build flavour and moving names.
    images::push(
        r,
        "library/busybox",
        "1.37.0-glibc",
        &multi(|a| busybox(a, "1.37.0-glibc")),
    )
    .await?;
    images::push(
        r,
        "library/busybox",
        "musl",
        &multi(|a| busybox(a, "1.37.0-musl")),
    )
    .await?;
    images::push(
        r,
        "library/busybox",
        "latest",
        &multi(|a| busybox(a, "1.37.0")),
    )
    .await?;
    let slim = multi(|a| debian(a, "bookworm", "12", "12.8"));
    images::push(r, "library/debian", "bookworm-slim", &slim).await?;
    images::push(r, "library/debian", "12.8-slim", &slim).await?;
    images::push(
        r,
        "library/debian",
        "bullseye-slim",
        &multi(|a| debian(a, "bullseye", "11", "11.11")),
    )
    .await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let Some(root) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: demo_upstream DIR   (e.g. testdata/upstream/docker.io)");
        return std::process::ExitCode::FAILURE;
    };
    if root.exists()
        && let Err(e) = std::fs::remove_dir_all(&root)
    {
        eprintln!("cannot clear {}: {e}", root.display());
        return std::process::ExitCode::FAILURE;
    }
    match write(&root).await {
        Ok(()) => {
            println!("wrote the demo upstream to {}", root.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write the demo upstream: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
