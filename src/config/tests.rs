use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn from_file(text: &str) -> Result<Settings, ConfigError> {
    settings_from_sources(
        Some((Path::new("conf/houba.toml"), text)),
        &[],
        &BTreeMap::new(),
    )
}

fn from_file_env(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    settings_from_sources(Some((Path::new("conf/houba.toml"), text)), &[], &env(vars))
}

fn err(text: &str) -> ConfigError {
    from_file(text).expect_err("configuration should be rejected")
}

#[test]
fn defaults_without_file_or_env() {
    let s = settings_from_sources(None, &[], &BTreeMap::new()).unwrap();
    assert_eq!(s, Settings::default());
    assert_eq!(s.policies, vec![PathBuf::from("policies")]);
    assert_eq!(s.label_prefix, "io.houba");
    assert_eq!(s.concurrency, 8);
    assert_eq!(s.max_prune_fraction, 0.5);
    assert_eq!(s.log_format, LogFormat::Text);
}

#[test]
fn full_file_is_read() {
    let s = from_file(
        r#"
log_format = "json"
label_prefix = "com.example.mirror"
concurrency = 4
max_prune_fraction = 1
policies = ["policies", "/abs/more"]

[registries.local]
host = "registry.local:5000"
tls_verify = false
concurrency = 2

[registries.ghcr]
host = "ghcr.io/acme/"
ca_cert = "certs/ghcr.pem"
username = "robot"
password_env = "GHCR_TOKEN"

[registries.hub]
layout = "layouts/hub"
mirror_of = "docker.io"

[ca_certs.corp]
path = "certs/corp.pem"
[ca_certs.inline]
pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

[package_mirrors.corp]
apt = "https://deb.example.org/debian"
apk = "http://apk.example.org/alpine"
"#,
    )
    .unwrap();
    assert_eq!(s.config_file, Some(PathBuf::from("conf/houba.toml")));
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.label_prefix, "com.example.mirror");
    assert_eq!(s.concurrency, 4);
    assert_eq!(s.max_prune_fraction, 1.0);
    assert_eq!(
        s.policies,
        vec![PathBuf::from("conf/policies"), PathBuf::from("/abs/more")]
    );

    let local = &s.registries["local"];
    assert_eq!(local.concurrency, 2);
    assert_eq!(
        local.endpoint,
        RegistryEndpoint::Http {
            host: "registry.local:5000".into(),
            prefix: None,
            tls_verify: false,
            ca_cert: None,
            credentials: Credentials::Ambient,
        }
    );
    let ghcr = &s.registries["ghcr"];
    assert_eq!(ghcr.concurrency, 8);
    assert_eq!(
        ghcr.endpoint,
        RegistryEndpoint::Http {
            host: "ghcr.io".into(),
            prefix: Some("acme".into()),
            tls_verify: true,
            ca_cert: Some(CaCert {
                path: PathBuf::from("conf/certs/ghcr.pem"),
                pem: Vec::new()
            }),
            credentials: Credentials::PasswordEnv {
                username: "robot".into(),
                env: "GHCR_TOKEN".into()
            },
        }
    );
    let hub = &s.registries["hub"];
    assert_eq!(
        hub.endpoint,
        RegistryEndpoint::Layout {
            path: PathBuf::from("conf/layouts/hub")
        }
    );
    assert_eq!(hub.mirror_of.as_deref(), Some("docker.io"));
    assert_eq!(
        s.ca_certs["corp"],
        CaSource::Path(PathBuf::from("conf/certs/corp.pem"))
    );
    assert!(matches!(&s.ca_certs["inline"], CaSource::Pem(p) if p.contains("MIIB")));
    assert_eq!(
        s.package_mirrors["corp"],
        PackageMirror {
            apt: Some("https://deb.example.org/debian".into()),
            apk: Some("http://apk.example.org/alpine".into()),
            yum: None,
        }
    );
}

#[test]
fn wrong_type_names_key_and_position() {
    let e = err("[registries.local]\nhost = \"r:5000\"\ntls_verify = \"no\"\n");
    assert_eq!(e.key(), "registries.local.tls_verify");
    assert_eq!(e.location(), "conf/houba.toml:3:14");
    assert!(e.help_text().unwrap().contains("without quotes"));
    let shown = e.to_string();
    assert!(
        shown.contains("registries.local.tls_verify: expected a boolean"),
        "{shown}"
    );
}

#[test]
fn unknown_keys_are_named() {
    let e = err("[registries.local]\nhost = \"r:5000\"\ntls = false\n");
    assert_eq!(e.key(), "registries.local.tls");
    assert!(e.help_text().unwrap().contains("tls_verify"));

    let e = err("colour = \"blue\"\n");
    assert_eq!(e.key(), "colour");
    assert_eq!(e.location(), "conf/houba.toml:1:1");

    let e =
        err("[package_mirrors.m]\napt = \"https://a.example\"\nzypper = \"https://b.example\"\n");
    assert_eq!(e.key(), "package_mirrors.m.zypper");
}

#[test]
fn inline_password_is_rejected_without_echoing_it() {
    let text =
        "[registries.r]\nhost = \"r.example\"\nusername = \"u\"\npassword = \"hunter2-secret\"\n";
    let e = err(text);
    assert_eq!(e.key(), "registries.r.password");
    let help = e.help_text().map(str::to_string).unwrap();
    assert!(help.contains("password_env") && help.contains("password_file"));
    let rendered = format!("{:?}", miette::Report::new(e));
    assert!(!rendered.contains("hunter2"), "{rendered}");

    let e = from_file_env(
        "",
        &[(
            "HOUBA_REGISTRIES",
            r#"{"r":{"host":"r.example","username":"u","password":"hunter2"}}"#,
        )],
    )
    .unwrap_err();
    assert_eq!(e.key(), "registries.r.password");
    assert!(!format!("{:?}", miette::Report::new(e)).contains("hunter2"));
}

#[test]
fn credentials_combinations() {
    let s = from_file(
        "[registries.r]\nhost = \"r.example\"\nusername = \"u\"\npassword_file = \"secret/pw\"\n",
    )
    .unwrap();
    assert!(matches!(
        &s.registries["r"].endpoint,
        RegistryEndpoint::Http { credentials: Credentials::PasswordFile { username, path }, .. }
            if username == "u" && path == Path::new("conf/secret/pw")
    ));
    let e = err("[registries.r]\nhost = \"r.example\"\nusername = \"u\"\n");
    assert_eq!(e.key(), "registries.r.username");
    let e = err("[registries.r]\nhost = \"r.example\"\npassword_env = \"X\"\n");
    assert_eq!(e.key(), "registries.r.password_env");
    let e = err(
        "[registries.r]\nhost = \"r.example\"\nusername = \"u\"\npassword_env = \"X\"\npassword_file = \"f\"\n",
    );
    assert_eq!(e.key(), "registries.r.password_file");
}

#[test]
fn host_and_layout_rules() {
    let e = err("[registries.r]\nhost = \"r.example\"\nlayout = \"dir\"\n");
    assert!(
        e.message().contains("mutually exclusive"),
        "{}",
        e.message()
    );
    let e = err("[registries.r]\nconcurrency = 2\n");
    assert_eq!(e.key(), "registries.r");
    let e = err("[registries.r]\nlayout = \"dir\"\ntls_verify = false\n");
    assert_eq!(e.key(), "registries.r.tls_verify");
    let e = err("[registries.r]\nhost = \"https://r.example\"\n");
    assert_eq!(e.key(), "registries.r.host");
    assert!(e.message().contains("scheme"));
    let e = err("[registries.r]\nhost = \"r.example/Upper\"\n");
    assert_eq!(e.key(), "registries.r.host");
    let e = err("[registries.r]\nhost = \"r.example\"\nconcurrency = 0\n");
    assert_eq!(e.key(), "registries.r.concurrency");
    let e = err("[registries.r]\nhost = \"r.example\"\nmirror_of = \"docker io\"\n");
    assert_eq!(e.key(), "registries.r.mirror_of");
}

#[test]
fn scalar_validation() {
    assert_eq!(err("concurrency = 0\n").key(), "concurrency");
    assert_eq!(err("concurrency = \"8\"\n").key(), "concurrency");
    assert_eq!(
        err("max_prune_fraction = 0.0\n").key(),
        "max_prune_fraction"
    );
    assert_eq!(
        err("max_prune_fraction = 1.5\n").key(),
        "max_prune_fraction"
    );
    assert_eq!(
        from_file("max_prune_fraction = 0.25\n")
            .unwrap()
            .max_prune_fraction,
        0.25
    );
    assert_eq!(err("log_format = \"xml\"\n").key(), "log_format");
    for bad in ["houba", "IO.Houba", "io..houba", "io.houba.", "-io.houba"] {
        assert_eq!(
            err(&format!("label_prefix = \"{bad}\"\n")).key(),
            "label_prefix",
            "{bad}"
        );
    }
    assert_eq!(
        from_file("label_prefix = \"io.example-corp.mirror\"\n")
            .unwrap()
            .label_prefix,
        "io.example-corp.mirror"
    );
    assert_eq!(err("policies = []\n").key(), "policies");
    assert_eq!(err("policies = \"p\"\n").key(), "policies");
}

#[test]
fn ca_and_mirror_rosters() {
    assert_eq!(err("[ca_certs.c]\n").key(), "ca_certs.c");
    assert_eq!(
        err("[ca_certs.c]\npath = \"a\"\npem = \"b\"\n").key(),
        "ca_certs.c"
    );
    assert_eq!(
        err("[ca_certs.c]\npem = \"not a cert\"\n").key(),
        "ca_certs.c.pem"
    );
    assert_eq!(err("[package_mirrors.m]\n").key(), "package_mirrors.m");
    for bad in ["ftp://x.example/", "not a url", "https://"] {
        let e = err(&format!("[package_mirrors.m]\nyum = \"{bad}\"\n"));
        assert_eq!(e.key(), "package_mirrors.m.yum", "{bad}");
    }
}

#[test]
fn toml_syntax_error_has_position_and_snippet() {
    let e = err("concurrency = 4\n[registries\n");
    assert_eq!(e.key(), "");
    assert!(
        e.location().starts_with("conf/houba.toml:2:"),
        "{}",
        e.location()
    );
    let rendered = format!("{:?}", miette::Report::new(e));
    assert!(rendered.contains("[registries"), "{rendered}");
}

#[test]
fn env_overrides_and_extends_file() {
    let s = from_file_env(
        "log_format = \"text\"\nconcurrency = 3\nlabel_prefix = \"org.file\"\n[registries.local]\nhost = \"file.example\"\n[registries.other]\nhost = \"other.example\"\n",
        &[
            ("HOUBA_REGISTRIES", r#"{"local":{"host":"registry.houba.svc.cluster.local:5000","tls_verify":false},"cache":{"layout":"cache","mirror_of":"docker.io"}}"#),
            ("HOUBA_LOG_FORMAT", "json"),
            ("HOUBA_CONCURRENCY", "16"),
            ("HOUBA_LABEL_PREFIX", "org.env"),
            ("HOUBA_MAX_PRUNE_FRACTION", "0.1"),
            ("HOUBA_POLICIES", "a:b/c"),
        ],
    )
    .unwrap();
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.concurrency, 16);
    assert_eq!(s.label_prefix, "org.env");
    assert_eq!(s.max_prune_fraction, 0.1);
    assert_eq!(s.policies, vec![PathBuf::from("a"), PathBuf::from("b/c")]);
    assert_eq!(
        s.registries.keys().collect::<Vec<_>>(),
        ["cache", "local", "other"]
    );
    assert!(matches!(
        &s.registries["local"].endpoint,
        RegistryEndpoint::Http { host, tls_verify: false, .. } if host == "registry.houba.svc.cluster.local:5000"
    ));
    // Layout paths from the environment are relative to the working directory.
    assert_eq!(
        s.registries["cache"].endpoint,
        RegistryEndpoint::Layout {
            path: PathBuf::from("cache")
        }
    );
}

#[test]
fn env_errors_name_variable_and_key() {
    let e = from_file_env(
        "",
        &[(
            "HOUBA_REGISTRIES",
            r#"{"local":{"host":"r","tls_verify":"no"}}"#,
        )],
    )
    .unwrap_err();
    assert_eq!(e.key(), "registries.local.tls_verify");
    assert_eq!(e.location(), "environment variable HOUBA_REGISTRIES");
    assert!(
        e.to_string()
            .contains("registries.local.tls_verify: expected a boolean")
    );

    let e = from_file_env("", &[("HOUBA_REGISTRIES", "{not json")]).unwrap_err();
    assert!(e.message().contains("line 1"), "{}", e.message());
    let e = from_file_env("", &[("HOUBA_REGISTRIES", "[1]")]).unwrap_err();
    assert_eq!(e.key(), "registries");
    let e = from_file_env("", &[("HOUBA_CONCURRENCY", "many")]).unwrap_err();
    assert_eq!(
        (e.key(), e.location()),
        ("concurrency", "environment variable HOUBA_CONCURRENCY")
    );
    let e = from_file_env("", &[("HOUBA_LOG_FORMAT", "yaml")]).unwrap_err();
    assert_eq!(e.key(), "log_format");
    let e = from_file_env("", &[("HOUBA_LABEL_PREFIX", "42")]).unwrap_err();
    assert_eq!(e.key(), "label_prefix");
    // Empty variables count as unset.
    assert!(from_file_env("", &[("HOUBA_CONCURRENCY", "")]).is_ok());
}

#[test]
fn policies_flag_wins() {
    let s = settings_from_sources(
        Some((Path::new("houba.toml"), "policies = [\"from-file\"]\n")),
        &[PathBuf::from("flag-dir")],
        &env(&[("HOUBA_POLICIES", "from-env")]),
    )
    .unwrap();
    assert_eq!(s.policies, vec![PathBuf::from("flag-dir")]);
    let s =
        settings_from_sources(Some((Path::new("houba.toml"), "")), &[], &BTreeMap::new()).unwrap();
    assert_eq!(s.policies, vec![PathBuf::from("policies")]);
}

#[test]
fn one_mirror_per_upstream() {
    let e = from_file(
        "[registries.a]\nlayout = \"a\"\nmirror_of = \"docker.io\"\n[registries.b]\nhost = \"b.example\"\nmirror_of = \"docker.io\"\n",
    )
    .unwrap_err();
    assert_eq!(e.key(), "registries.b.mirror_of");
    assert!(e.message().contains("`a`"));
}

#[test]
fn source_entry_and_display_host() {
    let s = from_file(
        "[registries.hub]\nlayout = \"hub\"\nmirror_of = \"docker.io\"\n[registries.quay]\nhost = \"quay.io\"\n[registries.ghcr]\nhost = \"ghcr.io/acme\"\n",
    )
    .unwrap();
    assert_eq!(s.source_entry("docker.io").unwrap().name, "hub");
    assert_eq!(s.source_entry("quay.io").unwrap().name, "quay");
    assert!(
        s.source_entry("ghcr.io").is_none(),
        "a prefixed entry is not an upstream"
    );
    assert!(s.source_entry("gcr.io").is_none());
    assert_eq!(s.display_host(&s.registries["hub"]), "hub");
    assert_eq!(s.display_host(&s.registries["quay"]), "quay.io");
    assert_eq!(s.display_host(&s.registries["ghcr"]), "ghcr.io/acme");
}

#[test]
fn load_settings_reads_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("custom.toml");
    std::fs::write(
        &file,
        "[registries.local]\nhost = \"127.0.0.1:5000\"\ntls_verify = false\n",
    )
    .unwrap();
    let s = load_settings(Some(&file), &[], &BTreeMap::new()).unwrap();
    assert_eq!(s.config_file.as_deref(), Some(file.as_path()));
    assert_eq!(s.policies, vec![dir.path().join("policies")]);

    let s = load_settings(None, &[], &env(&[("HOUBA_CONFIG", file.to_str().unwrap())])).unwrap();
    assert_eq!(s.config_file.as_deref(), Some(file.as_path()));

    // Found beside the policy directory when the working directory has none, and the working
    // directory's own file first.
    let beside = dir.path().join("houba.toml");
    std::fs::write(&beside, "concurrency = 5\n").unwrap();
    let policies = dir.path().join("policies");
    let elsewhere = tempfile::tempdir().unwrap();
    assert_eq!(
        discover_config(elsewhere.path(), std::slice::from_ref(&policies)),
        Some(beside.clone())
    );
    let cwd_file = elsewhere.path().join("houba.toml");
    std::fs::write(&cwd_file, "concurrency = 6\n").unwrap();
    assert_eq!(
        discover_config(elsewhere.path(), std::slice::from_ref(&policies)),
        Some(cwd_file)
    );
    let s = load_settings(
        Some(&beside),
        std::slice::from_ref(&policies),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(s.concurrency, 5);
    assert_eq!(s.policies, vec![policies]);

    let missing = dir.path().join("missing.toml");
    let e = load_settings(Some(&missing), &[], &BTreeMap::new()).unwrap_err();
    assert_eq!(e.location(), "flag --config");
    assert!(e.message().contains("missing.toml"));
}

#[test]
fn builders_come_from_buildkit_host_and_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().unwrap();
    let install = |name: &str, mode: u32| {
        let path = bin.path().join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let buildah = install("buildah", 0o755);
    // Not executable: not a builder.
    install("buildctl", 0o644);
    let path = format!("/nonexistent:{}", bin.path().display());

    let found = Builders::from_env(&env(&[("PATH", &path)]));
    assert_eq!(found.buildah.as_deref(), Some(buildah.as_path()));
    assert_eq!(found.buildctl, None);
    assert_eq!(
        found.choose(),
        Some(Builder::Buildah {
            program: buildah.clone()
        })
    );

    let buildctl = install("buildctl", 0o755);
    let with_host = Builders::from_env(&env(&[
        ("PATH", &path),
        ("BUILDKIT_HOST", "tcp://127.0.0.1:1234"),
    ]));
    assert_eq!(
        with_host.choose(),
        Some(Builder::Buildkit {
            buildctl,
            host: "tcp://127.0.0.1:1234".into()
        })
    );

    let none = Builders::from_env(&env(&[("PATH", "/nonexistent"), ("BUILDKIT_HOST", " ")]));
    assert_eq!(none.choose(), None);
    let settings = settings_from_sources(None, &[], &env(&[("PATH", &path)])).unwrap();
    assert!(settings.builders.buildah.is_some());
}

#[test]
fn every_problem_is_reported_at_once_with_its_place() {
    let text = "concurrency = 0\nlog_format = \"yaml\"\nunknown_top = 1\n\n[registries.r]\nhost = \"r.example\"\nusername = \"u\"\npassword = \"hunter2-secret\"\ntls_verify = \"no\"\n\n[registries.bad]\nhost = \"b.example\"\nmirror_of = 7\n\n[package_mirrors.m]\napt = \"ftp://x\"\nyum = \"not a url\"\n";
    let e = err(text);
    let headlines = e.headlines();
    assert_eq!(e.count(), 8, "{headlines:#?}");
    for expected in [
        "conf/houba.toml:1:15: concurrency: must be greater than 0",
        "conf/houba.toml:2:14: log_format: unknown log format `yaml`",
        "conf/houba.toml:3:1: unknown_top: unknown key",
        "conf/houba.toml:8:1: registries.r.password: inline passwords are not accepted",
        "conf/houba.toml:9:14: registries.r.tls_verify: expected a boolean, found a string",
        "conf/houba.toml:13:13: registries.bad.mirror_of:",
        "conf/houba.toml:16:7: package_mirrors.m.apt:",
        "conf/houba.toml:17:7: package_mirrors.m.yum:",
    ] {
        assert!(
            headlines.iter().any(|h| h.starts_with(expected)),
            "missing `{expected}` in {headlines:#?}"
        );
    }
    let rendered = format!(
        "{:?}",
        miette::Report::new(e).with_source_code(String::new())
    );
    assert!(
        rendered.contains("8 problems in the configuration"),
        "{rendered}"
    );
    // The password line is shown, masked; the neighbouring problem's snippet masks it too.
    assert!(
        rendered.contains("password = ****************"),
        "{rendered}"
    );
    assert!(!rendered.contains("hunter2"), "{rendered}");
}

#[test]
fn file_and_environment_problems_come_together() {
    let e = from_file_env(
        "concurrency = -1\n",
        &[("HOUBA_LOG_FORMAT", "xml"), ("HOUBA_CONCURRENCY", "zero")],
    )
    .unwrap_err();
    let headlines = e.headlines();
    assert_eq!(e.count(), 3, "{headlines:#?}");
    assert!(headlines[0].starts_with("conf/houba.toml:1:15: concurrency"));
    assert!(headlines[1].starts_with("environment variable HOUBA_LOG_FORMAT"));
    assert!(headlines[2].starts_with("environment variable HOUBA_CONCURRENCY"));
}
