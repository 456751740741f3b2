//! Running the real `houba` binary against registries on loopback.
//!
//! A `Workspace` is a temporary directory holding a `houba.toml` (an "upstream" registry that
//! stands in for `docker.io`, plus named destination registries), a `policies/` directory and a
//! manifest cache. Commands run as child processes with a clean environment, so nothing from
//! the developer's machine (docker credentials, `HOUBA_*` variables) leaks in.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use houba::registry::Registry;
use houba::registry::digest::sha256_digest;
use serde_json::{Value, json};

use super::images::{self, Blob, Built, OCI_LAYER_GZIP};

/// Key prefix of houba's own stamp annotations (the default `label_prefix`).
pub const PREFIX: &str = "io.houba";

/// What one `houba` invocation did.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with both streams when the exit code is not `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// stderr with miette's wrapping undone: box-drawing gutters dropped and lines joined by
    /// single spaces, so a message can be searched for whatever the terminal width.
    pub fn stderr_flat(&self) -> String {
        self.stderr
            .lines()
            .map(|l| l.trim().trim_start_matches(['│', '×', '┃']).trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A houba working directory: configuration, policies and cache.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    upstream: String,
    destinations: Vec<(String, String)>,
}

impl Workspace {
    /// `upstream_host` stands in for `docker.io`; `destinations` are `(roster name, host)`.
    pub fn new(upstream_host: &str, destinations: &[(&str, &str)]) -> Workspace {
        let ws = Workspace {
            dir: tempfile::tempdir().expect("tempdir"),
            upstream: upstream_host.to_string(),
            destinations: destinations
                .iter()
                .map(|(n, h)| (n.to_string(), h.to_string()))
                .collect(),
        };
        std::fs::create_dir_all(ws.dir.path().join("policies")).expect("policies dir");
        std::fs::create_dir_all(ws.dir.path().join("cache")).expect("cache dir");
        std::fs::create_dir_all(ws.dir.path().join("docker")).expect("docker config dir");
        ws.write_config("");
        ws
    }

    /// Rewrite `houba.toml`, with `extra` top-level settings before the roster.
    pub fn write_config(&self, extra: &str) {
        let mut toml = format!(
            "policies = [\"policies\"]\n{extra}\n\n[registries.upstream]\nhost = \"{}\"\ntls_verify = false\nmirror_of = \"docker.io\"\n",
            self.upstream
        );
        for (name, host) in &self.destinations {
            toml.push_str(&format!(
                "\n[registries.{name}]\nhost = \"{host}\"\ntls_verify = false\n"
            ));
        }
        std::fs::write(self.config(), toml).expect("write houba.toml");
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("houba.toml")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write (or replace) `policies/<file>.yaml`.
    pub fn policy(&self, file: &str, yaml: &str) {
        std::fs::write(
            self.dir
                .path()
                .join("policies")
                .join(format!("{file}.yaml")),
            yaml,
        )
        .expect("write policy");
    }

    /// The command, not started: `houba --config <ws>/houba.toml <args>`.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_houba"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env("HOUBA_CACHE_DIR", self.dir.path().join("cache"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().await.expect("houba runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `houba plan --format json`, which must succeed.
    pub async fn plan_json(&self, extra: &[&str]) -> Value {
        let mut args = vec!["plan", "--format", "json"];
        args.extend_from_slice(extra);
        self.run(&args).await.expect_code(0).json()
    }

    /// `houba plan` (text), which must succeed.
    pub async fn plan_text(&self) -> String {
        self.run(&["plan"]).await.expect_code(0).stdout.clone()
    }

    /// `houba apply --auto --format json`, which must succeed; the run report.
    pub async fn apply(&self, extra: &[&str]) -> Value {
        let mut args = vec!["apply", "--auto", "--format", "json"];
        args.extend_from_slice(extra);
        self.run(&args).await.expect_code(0).json()
    }

    /// Apply, then check that a fresh plan has nothing left to do.
    pub async fn apply_and_converge(&self) -> Value {
        let report = self.apply(&[]).await;
        let plan = self.plan_text().await;
        assert!(
            plan.contains("No changes. The registries match the policies."),
            "a plan right after apply must be empty:\n{plan}"
        );
        report
    }
}

/// What a test policy declares. Rendered to YAML by `yaml()`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// Upstream repository under docker.io.
    pub source: String,
    pub include: String,
    pub aliases: Vec<String>,
    pub owners: Vec<String>,
    pub vendor: Option<String>,
    pub settle: Option<String>,
    pub deletion_mode: Option<String>,
    /// Destination roster names; each gets `project/repository`.
    pub destinations: Vec<String>,
    pub project: String,
    pub repository: String,
    /// Extra import names (`names:`), bypassing the regex.
    pub names: Vec<String>,
}

impl Policy {
    /// A policy copying `library/<repository>` tags matching `include` into
    /// `mirror/<repository>` of `destination`.
    pub fn new(name: &str, repository: &str, include: &str, destination: &str) -> Policy {
        Policy {
            name: name.into(),
            source: format!("library/{repository}"),
            include: include.into(),
            aliases: vec![],
            owners: vec!["group:default/platform".into()],
            vendor: Some("Example Platform Team".into()),
            settle: None,
            deletion_mode: None,
            destinations: vec![destination.into()],
            project: "mirror".into(),
            repository: repository.into(),
            names: vec![],
        }
    }

    pub fn yaml(&self) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut y = format!(
            "apiVersion: houba.io/v1alpha1\nkind: MirrorPolicy\nmetadata:\n  name: {}\nspec:\n  source:\n    registry: docker.io\n    repository: {}\n",
            self.name, self.source
        );
        if let Some(m) = &self.deletion_mode {
            y.push_str(&format!("  deletionMode: {m}\n"));
        }
        y.push_str("  imports:\n    - name: stable\n      tags:\n");
        y.push_str(&format!("        includeRegex: '{}'\n", self.include));
        if !self.aliases.is_empty() {
            y.push_str(&format!("        aliases: [{}]\n", list(&self.aliases)));
        }
        if !self.names.is_empty() {
            y.push_str(&format!("        names: [{}]\n", list(&self.names)));
        }
        y.push_str(&format!("      owners: [{}]\n", list(&self.owners)));
        if let Some(v) = &self.vendor {
            y.push_str(&format!("      vendor: \"{v}\"\n"));
        }
        if let Some(s) = &self.settle {
            y.push_str(&format!("      settle: {s}\n"));
        }
        y.push_str("      destinations:\n");
        for d in &self.destinations {
            y.push_str(&format!(
                "        - {{ registry: {d}, project: {}, repository: {} }}\n",
                self.project, self.repository
            ));
        }
        y
    }

    /// The destination repository path (`mirror/busybox`).
    pub fn destination_repository(&self) -> String {
        format!("{}/{}", self.project, self.repository)
    }

    /// The address of a placement or alias of this policy's only import.
    pub fn address(&self, host: &str, tag: &str) -> String {
        format!(
            "{}/stable/default[{host}/{}:{tag}]",
            self.name,
            self.destination_repository()
        )
    }
}

/// A small upstream image: a layer shared by every image of `repository`, and one layer of
/// its own that depends on `tag` and `generation` (bump it to "retag" upstream).
pub fn upstream_image(repository: &str, tag: &str, generation: u32) -> Built {
    upstream_image_annotated(repository, tag, generation, None)
}

/// `upstream_image` whose manifest carries `annotations` (e.g. a creation time).
pub fn upstream_image_annotated(
    repository: &str,
    tag: &str,
    generation: u32,
    annotations: Option<Value>,
) -> Built {
    let layers = image_layers(repository, tag, generation);
    let label = format!("{repository}:{tag}#{generation}");
    match annotations {
        Some(a) => images::oci_image_annotated(&label, layers, a),
        None => images::oci_image(&label, "amd64", layers),
    }
}

fn image_layers(repository: &str, tag: &str, generation: u32) -> Vec<Blob> {
    let base = images::tar_layer(
        OCI_LAYER_GZIP,
        &[("etc/os-release", format!("ID={repository}\n").as_bytes())],
    );
    let own = images::tar_layer(
        OCI_LAYER_GZIP,
        &[(
            "app/version",
            format!("{repository} {tag} generation {generation}\n").as_bytes(),
        )],
    );
    vec![base, own]
}

/// Push `upstream_image(repository, tag, generation)` as `library/<repository>:<tag>`.
pub async fn push_upstream(
    upstream: &dyn Registry,
    repository: &str,
    tag: &str,
    generation: u32,
) -> Built {
    let image = upstream_image(repository, tag, generation);
    images::push_image(upstream, &format!("library/{repository}"), tag, &image)
        .await
        .expect("push upstream image");
    image
}

/// The actions of a JSON plan as `(action, address)` pairs, in plan order.
pub fn actions(plan: &Value) -> Vec<(String, String)> {
    plan["actions"]
        .as_array()
        .expect("actions array")
        .iter()
        .map(|a| {
            (
                a["action"].as_str().expect("action").to_string(),
                a["address"].as_str().expect("address").to_string(),
            )
        })
        .collect()
}

/// The action of a JSON plan at `address`.
#[track_caller]
pub fn action<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["actions"]
        .as_array()
        .expect("actions array")
        .iter()
        .find(|a| a["address"] == address)
        .unwrap_or_else(|| panic!("no action for {address} in {:#}", plan["actions"]))
}

/// Tag → digest of every image tag of `repository` (empty when the repository does not exist).
/// Evidence tags — the referrers fallback index `sha256-<hex>` and cosign's
/// `sha256-<hex>.sig/.att/.sbom` — are not images and are left out.
pub async fn tag_digests(registry: &dyn Registry, repository: &str) -> BTreeMap<String, String> {
    tags_and_digests(registry, repository, false).await
}

/// Tag → digest of every tag of `repository`, evidence tags included.
#[allow(dead_code)]
pub async fn all_tag_digests(
    registry: &dyn Registry,
    repository: &str,
) -> BTreeMap<String, String> {
    tags_and_digests(registry, repository, true).await
}

async fn tags_and_digests(
    registry: &dyn Registry,
    repository: &str,
    with_evidence: bool,
) -> BTreeMap<String, String> {
    let tags = registry.list_tags(repository).await.unwrap_or_default();
    let mut out = BTreeMap::new();
    for t in tags {
        let evidence_tag = ::houba::registry::referrers::is_fallback_tag(
            t.rsplit_once('.')
                .filter(|(_, s)| ["sig", "att", "sbom"].contains(s))
                .map_or(t.as_str(), |(base, _)| base),
        );
        if evidence_tag && !with_evidence {
            continue;
        }
        if let Some(d) = registry
            .head_manifest(repository, &t)
            .await
            .expect("HEAD tag")
        {
            out.insert(t, d.digest);
        }
    }
    out
}

/// The annotations of a raw manifest.
pub fn annotations(raw: &[u8]) -> BTreeMap<String, String> {
    let v: Value = serde_json::from_slice(raw).expect("manifest JSON");
    v["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A manifest without its annotations, for "only the annotations changed" comparisons.
pub fn without_annotations(raw: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(raw).expect("manifest JSON");
    v.as_object_mut().expect("object").remove("annotations");
    v
}

/// The exact stamp a copy of `library/<repository>:<tag>` (upstream digest `base`) carries
/// under `policy`, when the upstream manifest declares no annotations.
pub fn expected_stamp(policy: &Policy, tag: &str, base: &str) -> BTreeMap<String, String> {
    let mut a: BTreeMap<String, String> = [
        (
            "org.opencontainers.image.source",
            format!("docker.io/{}", policy.source),
        ),
        (
            "org.opencontainers.image.base.name",
            format!("docker.io/{}:{tag}", policy.source),
        ),
        ("org.opencontainers.image.base.digest", base.to_string()),
        (
            "org.opencontainers.image.title",
            policy
                .source
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        ("io.houba.policy", policy.name.clone()),
        ("io.houba.import", "stable".to_string()),
        ("io.houba.variant", "default".to_string()),
        ("io.houba.owners", policy.owners.join(",")),
        ("io.houba.artifact.type", "image".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(v) = &policy.vendor {
        a.insert("org.opencontainers.image.vendor".into(), v.clone());
    }
    a
}

/// `skopeo inspect` (not raw: it also reads the image config) of `docker://host/reference`.
pub async fn skopeo_inspect(host: &str, reference: &str) -> Result<Value, String> {
    let out = tokio::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{host}/{reference}"))
        .output()
        .await
        .expect("skopeo runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// `skopeo inspect --raw` bytes of `docker://host/reference`.
pub async fn skopeo_raw(host: &str, reference: &str) -> Vec<u8> {
    let out = tokio::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/{reference}"))
        .output()
        .await
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo inspect --raw {reference} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every blob an image manifest references exists in `repository`; returns how many.
pub async fn assert_complete(registry: &dyn Registry, repository: &str, raw: &[u8]) -> usize {
    let v: Value = serde_json::from_slice(raw).expect("manifest JSON");
    let mut digests: Vec<String> = vec![];
    if let Some(c) = v["config"]["digest"].as_str() {
        digests.push(c.to_string());
    }
    for l in v["layers"].as_array().into_iter().flatten() {
        digests.push(l["digest"].as_str().expect("layer digest").to_string());
    }
    for d in &digests {
        assert!(
            registry
                .blob_exists(repository, d)
                .await
                .expect("HEAD blob"),
            "{repository}: blob {d} referenced by {} is missing",
            sha256_digest(raw)
        );
    }
    digests.len()
}

/// An RFC 3339 UTC timestamp `secs_ago` seconds before now (for `created` annotations).
pub fn rfc3339_ago(secs_ago: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let t = now.saturating_sub(secs_ago) as i64;
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A creation-time annotation for upstream images.
pub fn created(timestamp: &str) -> Value {
    json!({ "org.opencontainers.image.created": timestamp })
}
