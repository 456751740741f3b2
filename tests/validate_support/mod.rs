//! Settings and rendering shared by the `validate_*` tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use houba::config::{
    CaSource, Credentials, LogFormat, PackageMirror, RegistryEndpoint, RegistryEntry, Settings,
};
use houba::policy::PolicyDiagnostic;

/// The roster every policy test runs against: one registry `local`, a CA `corporate-root`
/// (inline PEM), a CA `missing-root` whose file does not exist, a mirror `internal`.
pub fn test_settings() -> Settings {
    let local = RegistryEntry {
        name: "local".into(),
        endpoint: RegistryEndpoint::Http {
            host: "127.0.0.1:5000".into(),
            prefix: None,
            tls_verify: false,
            ca_cert: None,
            credentials: Credentials::Ambient,
        },
        mirror_of: None,
        concurrency: 8,
    };
    Settings {
        config_file: None,
        policies: vec![PathBuf::from("policies")],
        registries: BTreeMap::from([("local".to_string(), local)]),
        ca_certs: BTreeMap::from([
            (
                "corporate-root".to_string(),
                CaSource::Pem("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into()),
            ),
            (
                "missing-root".to_string(),
                CaSource::Path(PathBuf::from("testdata/policies/no-such-ca.pem")),
            ),
        ]),
        package_mirrors: BTreeMap::from([(
            "internal".to_string(),
            PackageMirror {
                apt: Some("http://127.0.0.1:8080/debian".into()),
                apk: None,
                yum: None,
            },
        )]),
        log_format: LogFormat::Text,
        label_prefix: "io.houba".into(),
        concurrency: 8,
        max_prune_fraction: 0.5,
        builders: Default::default(),
        operations: Default::default(),
        sbom: Default::default(),
        signing: None,
    }
}

/// `code file:line:col`, plus ` related file:line:col` for every other place involved; file
/// paths relative to `base`.
pub fn golden_line(diagnostic: &PolicyDiagnostic, base: &Path) -> String {
    let place = |d: &PolicyDiagnostic| {
        let file = d.file.strip_prefix(base).unwrap_or(&d.file);
        if d.line == 0 {
            file.display().to_string()
        } else {
            format!("{}:{}:{}", file.display(), d.line, d.column)
        }
    };
    let mut line = format!("{} {}", diagnostic.code(), place(diagnostic));
    for related in diagnostic.related_places() {
        line.push_str(&format!(" related {}", place(related)));
    }
    line
}
