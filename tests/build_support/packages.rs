//! Images with real package databases, made in code (deterministically): an Alpine-like image
//! with `/lib/apk/db/installed` in apk's own format, and a UBI-like image with an rpm 4.16+
//! `rpmdb.sqlite` whose `Packages` rows are rpm header blobs (index entries sorted by tag,
//! data aligned as rpm aligns it), both with `/etc/os-release`, split over layers with
//! whiteouts so the merged view matters.

use std::path::Path;

use houba::build::layout::LayoutDir;

use super::{Compression, StoredImage, store_tars};

/// Regular files, directories and whiteouts for a layer, bytes included.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, Vec<u8>),
    Symlink(&'a str, &'a str),
    Whiteout(&'a str),
}

pub fn tar_of(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind, mode, size| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h
    };
    for entry in entries {
        match entry {
            Entry::Dir(p) => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                b.append_data(&mut h, format!("{p}/"), &[][..]).unwrap();
            }
            Entry::File(p, data) => {
                let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
                b.append_data(&mut h, p, data.as_slice()).unwrap();
            }
            Entry::Symlink(p, target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, p, target).unwrap();
            }
            Entry::Whiteout(p) => {
                let (dir, name) = p.rsplit_once('/').unwrap();
                let mut h = header(tar::EntryType::Regular, 0o644, 0);
                b.append_data(&mut h, format!("{dir}/.wh.{name}"), &[][..])
                    .unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// (name, version, license, origin) of the apk packages, in install order.
pub const APK_PACKAGES: &[(&str, &str, &str, &str)] = &[
    ("musl", "1.2.5-r0", "MIT", "musl"),
    ("busybox", "1.36.1-r29", "GPL-2.0-only", "busybox"),
    (
        "alpine-baselayout-data",
        "3.6.5-r0",
        "GPL-2.0-only",
        "alpine-baselayout",
    ),
    (
        "ca-certificates-bundle",
        "20240705-r0",
        "MPL-2.0 AND MIT",
        "ca-certificates",
    ),
    ("libcrypto3", "3.3.2-r0", "Apache-2.0", "openssl"),
    ("zlib", "1.3.1-r1", "Zlib", "zlib"),
];

fn apk_stanza(name: &str, version: &str, license: &str, origin: &str) -> String {
    // The fields apk writes, in apk's order; checksums are apk's `Q1` + base64 SHA-1 shape.
    let q1 = |seed: &str| {
        use base64::Engine as _;
        let digest = houba::build::sha256_digest(seed.as_bytes());
        format!(
            "Q1{}=",
            &base64::engine::general_purpose::STANDARD.encode(&digest.as_bytes()[7..27])[..27]
        )
    };
    format!(
        "C:{}\nP:{name}\nV:{version}\nA:x86_64\nS:{}\nI:{}\nT:{name} package\nU:https://example.org/{name}\nL:{license}\no:{origin}\nm:Natanael Copa <ncopa@alpinelinux.org>\nt:1720000000\nc:{}\nF:usr\nF:usr/lib\nR:{name}.so\na:0:0:755\nZ:{}\n\n",
        q1(name),
        1000 + name.len(),
        4000 + name.len(),
        &houba::build::sha256_digest(origin.as_bytes())[7..47],
        q1(version),
    )
}

/// Alpine 3.20: the package database is written twice (apk rewrites it on every change), the
/// upper copy adds `zlib` and `libcrypto3`, and a whiteout removes an old database location.
pub fn alpine_with_apk_db(layout: &LayoutDir) -> StoredImage {
    let first: String = APK_PACKAGES[..4]
        .iter()
        .map(|(n, v, l, o)| apk_stanza(n, v, l, o))
        .collect();
    let all: String = APK_PACKAGES
        .iter()
        .map(|(n, v, l, o)| apk_stanza(n, v, l, o))
        .collect();
    let os_release = b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\nHOME_URL=\"https://alpinelinux.org/\"\n".to_vec();
    let base = tar_of(&[
        Entry::Dir("etc"),
        Entry::File("etc/os-release", os_release),
        Entry::Dir("lib"),
        Entry::Dir("lib/apk"),
        Entry::Dir("lib/apk/db"),
        Entry::File("lib/apk/db/installed", first.into_bytes()),
        Entry::File("lib/apk/db/scripts.tar", b"".to_vec()),
        Entry::Dir("var"),
        Entry::Dir("var/lib"),
        Entry::Dir("var/lib/apk"),
        Entry::File("var/lib/apk/installed.old", b"P:gone\nV:0\n".to_vec()),
    ]);
    let upper = tar_of(&[
        Entry::Dir("lib/apk/db"),
        Entry::File("lib/apk/db/installed", all.into_bytes()),
        Entry::Whiteout("var/lib/apk"),
    ]);
    store_tars(
        layout,
        "alpine",
        vec![(base, Compression::Gzip), (upper, Compression::Zstd)],
        false,
    )
}

const RPM_STRING: u32 = 6;
const RPM_INT32: u32 = 4;
const RPM_STRING_ARRAY: u32 = 8;

/// One rpm header blob, as rpm stores it in `rpmdb.sqlite` (no lead magic).
pub fn rpm_header(tags: &[(u32, RpmValue)]) -> Vec<u8> {
    let mut tags: Vec<&(u32, RpmValue)> = tags.iter().collect();
    tags.sort_by_key(|(t, _)| *t);
    let mut index = Vec::new();
    let mut data = Vec::new();
    for (tag, value) in tags {
        let (kind, count, bytes, align) = match value {
            RpmValue::Str(s) => (RPM_STRING, 1u32, [s.as_bytes(), &[0]].concat(), 1),
            RpmValue::Int(n) => (RPM_INT32, 1, n.to_be_bytes().to_vec(), 4),
            RpmValue::Strings(items) => (
                RPM_STRING_ARRAY,
                items.len() as u32,
                items
                    .iter()
                    .flat_map(|s| [s.as_bytes(), &[0]].concat())
                    .collect(),
                1,
            ),
        };
        while data.len() % align != 0 {
            data.push(0);
        }
        for v in [*tag, kind, data.len() as u32, count] {
            index.extend(v.to_be_bytes());
        }
        data.extend(bytes);
    }
    let mut blob = Vec::new();
    blob.extend((index.len() as u32 / 16).to_be_bytes());
    blob.extend((data.len() as u32).to_be_bytes());
    blob.extend(index);
    blob.extend(data);
    blob
}

pub enum RpmValue {
    Str(&'static str),
    Int(u32),
    Strings(Vec<&'static str>),
}

/// (name, epoch, version, release, license) of the rpm packages.
pub const RPM_PACKAGES: &[(&str, Option<u32>, &str, &str, &str)] = &[
    ("bash", None, "5.1.8", "9.el9", "GPL-3.0-or-later"),
    (
        "glibc",
        None,
        "2.34",
        "100.el9_4.2",
        "LGPL-2.1-or-later AND GPL-2.0-or-later",
    ),
    ("openssl-libs", Some(1), "3.0.7", "27.el9", "Apache-2.0"),
    (
        "tzdata",
        None,
        "2024a",
        "1.el9",
        "LicenseRef-Fedora-Public-Domain",
    ),
    ("zlib", None, "1.2.11", "40.el9", "zlib and Boost"),
];

/// An `rpmdb.sqlite` holding rpm's imported signing key (listed as package `gpg-pubkey`) and
/// [`RPM_PACKAGES`], written to `path`.
pub fn write_rpmdb(path: &Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    // rpm's own schema (lib/backend/sqlite.c).
    db.execute_batch(
        "PRAGMA journal_mode = DELETE;
         CREATE TABLE IF NOT EXISTS 'Packages' ('hnum' INTEGER PRIMARY KEY AUTOINCREMENT,'blob' BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS 'Name' ('key' TEXT NOT NULL,'hnum' INTEGER NOT NULL,'idx' INTEGER NOT NULL, FOREIGN KEY (hnum) REFERENCES 'Packages'(hnum));",
    )
    .unwrap();
    let mut rows: Vec<(&str, Vec<u8>)> = vec![(
        "gpg-pubkey",
        rpm_header(&[
            (1000, RpmValue::Str("gpg-pubkey")),
            (1001, RpmValue::Str("fd431d51")),
            (1002, RpmValue::Str("4ae0493b")),
            (
                1004,
                RpmValue::Str("gpg(Red Hat, Inc. (release key 2) <security@redhat.com>)"),
            ),
        ]),
    )];
    for (name, epoch, version, release, license) in RPM_PACKAGES {
        let mut tags = vec![
            (1000, RpmValue::Str(name)),
            (1001, RpmValue::Str(version)),
            (1002, RpmValue::Str(release)),
            (1004, RpmValue::Str("a package")),
            (1009, RpmValue::Int(4096)),
            (1011, RpmValue::Str("Red Hat, Inc.")),
            (1014, RpmValue::Str(license)),
            (1021, RpmValue::Str("linux")),
            (1022, RpmValue::Str("x86_64")),
            (1044, RpmValue::Str("src.rpm")),
            (1047, RpmValue::Strings(vec![name])),
        ];
        if let Some(e) = epoch {
            tags.push((1003, RpmValue::Int(*e)));
        }
        rows.push((name, rpm_header(&tags)));
    }
    for (i, (name, blob)) in rows.iter().enumerate() {
        db.execute("INSERT INTO Packages (blob) VALUES (?1)", [blob])
            .unwrap();
        db.execute(
            "INSERT INTO Name (key, hnum, idx) VALUES (?1, ?2, 0)",
            rusqlite::params![name, i as i64 + 1],
        )
        .unwrap();
    }
}

/// UBI 9: `os-release` as a symlink into `/usr/lib` (as on RHEL), the rpm database in an upper
/// layer (rpm rewrites it), an old BerkeleyDB file whited out.
pub fn ubi_with_rpmdb(layout: &LayoutDir, scratch: &Path) -> StoredImage {
    let db_path = scratch.join("rpmdb.sqlite");
    let _ = std::fs::remove_file(&db_path);
    write_rpmdb(&db_path);
    let db = std::fs::read(&db_path).unwrap();
    let os_release = b"NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"9.4 (Plow)\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.4 (Plow)\"\n".to_vec();
    let base = tar_of(&[
        Entry::Dir("etc"),
        Entry::Symlink("etc/os-release", "../usr/lib/os-release"),
        Entry::Dir("usr"),
        Entry::Dir("usr/lib"),
        Entry::File("usr/lib/os-release", os_release),
        Entry::Dir("var"),
        Entry::Dir("var/lib"),
        Entry::Dir("var/lib/rpm"),
        Entry::File("var/lib/rpm/Packages", b"old berkeley db".to_vec()),
    ]);
    let upper = tar_of(&[
        Entry::Dir("var/lib/rpm"),
        Entry::Whiteout("var/lib/rpm/Packages"),
        Entry::File("var/lib/rpm/rpmdb.sqlite", db),
    ]);
    store_tars(
        layout,
        "ubi",
        vec![(base, Compression::Zstd), (upper, Compression::Gzip)],
        false,
    )
}
