//! Package databases → packages: dpkg (`status` and distroless `status.d/`), apk
//! (`installed`), rpm (`rpmdb.sqlite`), and the distro from `os-release`.

use std::collections::BTreeMap;

use super::collector::{
    APK_INSTALLED, DPKG_STATUS, DPKG_STATUS_DIR, MergedFiles, OS_RELEASE, RPM_SQLITE,
};
use super::rpm;

/// Which package manager recorded a package (it decides the purl type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ecosystem {
    /// Debian packages (dpkg).
    Deb,
    /// Alpine packages (apk).
    Apk,
    /// RPM packages.
    Rpm,
}

impl Ecosystem {
    /// The package URL type (`deb`, `apk`, `rpm`).
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Rpm => "rpm",
        }
    }
}

/// One installed OS package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    /// Which package manager installed it.
    pub ecosystem: Ecosystem,
    /// The package's name.
    pub name: String,
    /// The version as the package manager prints it (dpkg `[epoch:]upstream-revision`, apk
    /// `x.y-rN`, rpm `[epoch:]version-release`).
    pub version: String,
    /// The architecture, when the database says.
    pub arch: Option<String>,
    /// The licence as the database declares it (apk `L:`, rpm `LICENSE`); dpkg has none.
    pub license: Option<String>,
    /// The source package (dpkg `Source`, apk origin, rpm source rpm).
    pub source: Option<String>,
    /// Who supplies it (the maintainer or vendor, when the database says).
    pub supplier: Option<String>,
    /// rpm epoch, kept apart for the purl qualifier.
    pub epoch: Option<u64>,
}

/// `/etc/os-release` of the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distro {
    /// `ID`.
    pub id: String,
    /// `VERSION_ID`.
    pub version_id: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
}

impl Distro {
    /// `<id>-<version_id>`, the purl `distro` qualifier.
    pub fn qualifier(&self) -> String {
        match &self.version_id {
            Some(v) => format!("{}-{v}", self.id),
            None => self.id.clone(),
        }
    }
}

/// What an image holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The distribution, when `os-release` was found.
    pub distro: Option<Distro>,
    /// Sorted, one entry per (ecosystem, name, version, arch).
    pub packages: Vec<Package>,
}

#[derive(Debug, thiserror::Error)]
/// A package database could not be read.
pub enum DatabaseError {
    /// The database is not in the expected format.
    #[error("/{path}: {detail}")]
    Unreadable {
        /// The database's path in the image.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// Reads every package database of the merged files.
pub fn inventory(files: &MergedFiles) -> Result<Inventory, DatabaseError> {
    let distro = OS_RELEASE
        .iter()
        .find_map(|p| files.read(p))
        .map(parse_os_release);
    let mut packages = Vec::new();
    if let Some(status) = files.read(DPKG_STATUS) {
        packages.extend(parse_dpkg(status));
    }
    for (_, stanza) in files.children(DPKG_STATUS_DIR) {
        packages.extend(parse_dpkg(stanza));
    }
    if let Some(installed) = files.read(APK_INSTALLED) {
        packages.extend(parse_apk(installed));
    }
    for path in RPM_SQLITE {
        if let Some(db) = files.read(path) {
            packages.extend(
                rpm::read_sqlite(db).map_err(|detail| DatabaseError::Unreadable {
                    path: (*path).to_owned(),
                    detail,
                })?,
            );
            break;
        }
    }
    packages.sort();
    packages.dedup_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.arch) == (b.ecosystem, &b.name, &b.version, &b.arch)
    });
    Ok(Inventory { distro, packages })
}

/// `KEY=value` lines, values optionally quoted (os-release(5)).
pub fn parse_os_release(bytes: &[u8]) -> Distro {
    let text = String::from_utf8_lossy(bytes);
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        fields.insert(key.to_owned(), value.replace("\\\"", "\""));
    }
    Distro {
        id: fields
            .get("ID")
            .cloned()
            .unwrap_or_else(|| "linux".to_owned()),
        version_id: fields.get("VERSION_ID").cloned(),
        pretty_name: fields.get("PRETTY_NAME").cloned(),
    }
}

/// RFC 822-style stanzas separated by blank lines; continuation lines start with a space.
fn stanzas(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut current: BTreeMap<String, String> = BTreeMap::new();
    let mut last_key: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            last_key = None;
        } else if line.starts_with([' ', '\t']) {
            if let Some(value) = last_key.as_ref().and_then(|k| current.get_mut(k)) {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            current.insert(key.to_owned(), value.trim().to_owned());
            last_key = Some(key.to_owned());
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// dpkg `status`: only packages whose state is `installed` (a removed package keeps its
/// stanza, `deinstall ok config-files`, until it is purged).
pub fn parse_dpkg(bytes: &[u8]) -> Vec<Package> {
    stanzas(&String::from_utf8_lossy(bytes))
        .into_iter()
        .filter(|s| {
            s.get("Status")
                .is_none_or(|status| status.split_whitespace().nth(2) == Some("installed"))
        })
        .filter_map(|s| {
            let name = s.get("Package")?.clone();
            let version = s.get("Version")?.clone();
            // `Source: name (version)` when the source version differs.
            let source = s
                .get("Source")
                .map(|v| v.split_whitespace().next().unwrap_or_default().to_owned());
            Some(Package {
                ecosystem: Ecosystem::Deb,
                name,
                version,
                arch: s.get("Architecture").cloned(),
                license: None,
                source,
                supplier: s.get("Maintainer").cloned(),
                epoch: None,
            })
        })
        .collect()
}

/// apk `installed`: stanzas of one-letter keys (`P` name, `V` version, `A` arch, `L` licence,
/// `o` origin, `m` maintainer), separated by blank lines.
pub fn parse_apk(bytes: &[u8]) -> Vec<Package> {
    let text = String::from_utf8_lossy(bytes);
    let mut packages = Vec::new();
    for block in text.split("\n\n") {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for line in block.lines() {
            if let Some((key, value)) = line.split_once(':')
                && key.len() == 1
            {
                fields.entry(key).or_insert(value);
            }
        }
        let (Some(name), Some(version)) = (fields.get("P"), fields.get("V")) else {
            continue;
        };
        let owned = |k: &str| fields.get(k).map(|v| (*v).to_owned());
        packages.push(Package {
            ecosystem: Ecosystem::Apk,
            name: (*name).to_owned(),
            version: (*version).to_owned(),
            arch: owned("A"),
            license: owned("L"),
            source: owned("o"),
            supplier: owned("m"),
            epoch: None,
        });
    }
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_keeps_installed_packages_with_their_source() {
        let status = b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n shared libraries\n\nPackage: old\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n";
        let packages = parse_dpkg(status);
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "libc6");
        assert_eq!(packages[0].version, "2.36-9+deb12u4");
        assert_eq!(packages[0].source.as_deref(), Some("glibc"));
        assert_eq!(packages[1].arch.as_deref(), Some("all"));
    }

    #[test]
    fn apk_reads_names_versions_and_licences() {
        let installed = b"C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\nC:Q1def=\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\n";
        let packages = parse_apk(installed);
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].license.as_deref(), Some("MIT"));
        assert_eq!(packages[1].version, "1.36.1-r15");
    }

    #[test]
    fn os_release_values_may_be_quoted() {
        let d = parse_os_release(
            b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(d.qualifier(), "debian-12");
        assert_eq!(
            d.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }
}
