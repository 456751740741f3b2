//! Settings: `houba.toml` + `HOUBA_*` environment variables, read in one place.
//!
//! This is the only module that reads the process environment. Everything downstream receives
//! a `Settings` value.

mod evidence;
pub mod operations;
mod parse;
mod roster;
#[cfg(test)]
mod tests;
mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use evidence::{SbomGenerator, SbomSettings, SecretPem, SigningSettings};
use parse::{Ctx, DEFAULT_CONCURRENCY, Layer, Problems};
pub use tree::ConfigError;
use tree::{Node, Origin, Value};

/// One roster entry: how to reach a registry (or an embedded OCI image layout directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryEndpoint {
    /// An HTTP(S) registry speaking the distribution API.
    Http {
        /// `host[:port]`, without scheme.
        host: String,
        /// Optional path prefix prepended to every repository (`ghcr.io/acme` → `acme`).
        prefix: Option<String>,
        /// false means plain HTTP (as in the reference deployment's roster).
        tls_verify: bool,
        /// Extra CA certificate (PEM file) trusted for this registry, read at load.
        ca_cert: Option<CaCert>,
        /// Where its credentials come from.
        credentials: Credentials,
    },
    /// An OCI image layout directory (`index.json` + `blobs/`); one sub-directory per
    /// repository.
    Layout {
        /// The directory.
        path: PathBuf,
    },
}

/// A registry's extra CA certificate: the file named in the roster and its PEM bytes, read
/// once by `load_settings` so that connecting to the registry does no file I/O.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaCert {
    /// The file the roster names.
    pub path: PathBuf,
    /// The file's bytes (empty until `load_settings` has read them).
    #[serde(skip)]
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for CaCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CaCert {{ path: {:?}, {} bytes }}",
            self.path,
            self.pem.len()
        )
    }
}

/// Where a registry's credentials come from. Secrets are never stored inline in a committed
/// file; the value is read when a client is built and never printed (`Debug` redacts).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Credentials {
    /// Nothing configured: docker `config.json` and credential helpers apply.
    #[default]
    Ambient,
    /// Username plus a password read from an environment variable.
    PasswordEnv {
        /// The user name.
        username: String,
        /// The environment variable holding the password.
        env: String,
    },
    /// Username plus a password read from a file.
    PasswordFile {
        /// The user name.
        username: String,
        /// The file holding the password.
        path: PathBuf,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Ambient => write!(f, "Ambient"),
            Credentials::PasswordEnv { username, env } => {
                write!(f, "PasswordEnv {{ username: {username:?}, env: {env:?} }}")
            }
            Credentials::PasswordFile { username, path } => {
                write!(
                    f,
                    "PasswordFile {{ username: {username:?}, path: {path:?} }}"
                )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// One entry of the registry roster (`[registries.<name>]`).
pub struct RegistryEntry {
    /// Roster key (`local`).
    pub name: String,
    /// How it is reached.
    pub endpoint: RegistryEndpoint,
    /// When set, this entry stands in for the given upstream host (`docker.io`): policies whose
    /// `source.registry` is that host are read through this entry (a pull-through cache or a
    /// layout directory) without touching the policies.
    pub mirror_of: Option<String>,
    /// Maximum concurrent requests to this registry.
    pub concurrency: usize,
}

/// A CA certificate in the transform roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaSource {
    /// A PEM file.
    Path(PathBuf),
    /// PEM text given inline.
    Pem(String),
}

/// A package mirror in the transform roster: base URLs per package manager.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PackageMirror {
    /// Base URL replacing the Debian/Ubuntu archives.
    pub apt: Option<String>,
    /// Base URL replacing the Alpine repositories.
    pub apk: Option<String>,
    /// Base URL replacing the yum/dnf repositories.
    pub yum: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
/// How logs are written to stderr (`log_format`, `HOUBA_LOG_FORMAT`).
pub enum LogFormat {
    #[default]
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// The effective configuration: `houba.toml` with the `HOUBA_*` environment applied.
pub struct Settings {
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Policy directories (default `./policies`, relative to the config file's directory when
    /// they come from it).
    pub policies: Vec<PathBuf>,
    /// Roster, keyed by entry name.
    pub registries: BTreeMap<String, RegistryEntry>,
    /// The `[ca_certs]` roster, by name.
    pub ca_certs: BTreeMap<String, CaSource>,
    /// The `[package_mirrors]` roster, by name.
    pub package_mirrors: BTreeMap<String, PackageMirror>,
    /// How logs are written.
    pub log_format: LogFormat,
    /// Annotation prefix for houba's own stamp keys (default `io.houba`).
    pub label_prefix: String,
    /// Global bound on concurrent work (apply `-j` overrides).
    pub concurrency: usize,
    /// Share of a repository's managed tags a prune under `--auto` may remove (default 0.5).
    pub max_prune_fraction: f64,
    /// Image builders available for steps that run commands (from `BUILDKIT_HOST` and `PATH`).
    pub builders: Builders,
    /// `[metrics]` and `[[notify]]`: what a run reports, and to whom.
    #[serde(default)]
    pub operations: operations::Operations,
    /// `[sbom]`: formats and generator of the SBOMs attached to placed images.
    pub sbom: SbomSettings,
    /// `[signing]`: off (`None`) unless a key is configured.
    pub signing: Option<SigningSettings>,
}

/// The image builders found in the environment, for images whose steps run commands.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Builders {
    /// `BUILDKIT_HOST`, when set (non-empty).
    pub buildkit_host: Option<String>,
    /// `buildctl`, found on `PATH`.
    pub buildctl: Option<PathBuf>,
    /// `buildah`, found on `PATH`.
    pub buildah: Option<PathBuf>,
}

/// The builder an image with `run` steps is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builder {
    /// `buildctl` against the BuildKit daemon at `host`.
    Buildkit {
        /// The `buildctl` program.
        buildctl: PathBuf,
        /// `BUILDKIT_HOST`.
        host: String,
    },
    /// Daemonless `buildah bud`.
    Buildah {
        /// The `buildah` program.
        program: PathBuf,
    },
}

impl Builders {
    /// Reads `BUILDKIT_HOST` and looks `buildctl` and `buildah` up on `PATH` (from `env`).
    pub fn from_env(env: &BTreeMap<String, String>) -> Self {
        let path = env.get("PATH").map(String::as_str).unwrap_or("");
        Builders {
            buildkit_host: non_empty(env, "BUILDKIT_HOST").map(str::to_string),
            buildctl: find_on_path(path, "buildctl"),
            buildah: find_on_path(path, "buildah"),
        }
    }

    /// BuildKit when `BUILDKIT_HOST` is set and `buildctl` is installed, else buildah when
    /// installed, else none.
    pub fn choose(&self) -> Option<Builder> {
        if let (Some(host), Some(buildctl)) = (&self.buildkit_host, &self.buildctl) {
            return Some(Builder::Buildkit {
                buildctl: buildctl.clone(),
                host: host.clone(),
            });
        }
        self.buildah.as_ref().map(|program| Builder::Buildah {
            program: program.clone(),
        })
    }
}

/// The first executable file named `program` in the `PATH` list `path`.
fn find_on_path(path: &str, program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

impl Default for Settings {
    /// What houba uses when neither a config file nor the environment says otherwise.
    fn default() -> Self {
        Settings {
            config_file: None,
            policies: vec![PathBuf::from(DEFAULT_POLICIES_DIR)],
            registries: BTreeMap::new(),
            ca_certs: BTreeMap::new(),
            package_mirrors: BTreeMap::new(),
            log_format: LogFormat::Text,
            label_prefix: DEFAULT_LABEL_PREFIX.to_string(),
            concurrency: DEFAULT_CONCURRENCY,
            max_prune_fraction: DEFAULT_MAX_PRUNE_FRACTION,
            builders: Builders::default(),
            operations: operations::Operations::default(),
            sbom: SbomSettings::default(),
            signing: None,
        }
    }
}

impl Settings {
    /// The roster entry through which an upstream host (a policy's `source.registry`) is read:
    /// the entry declaring `mirror_of = <host>` when there is one, else an HTTP entry for that
    /// very host without a path prefix (a prefix would be prepended to upstream repository
    /// paths and point elsewhere). `None` means: reach the upstream directly, with ambient
    /// credentials.
    pub fn source_entry(&self, upstream_host: &str) -> Option<&RegistryEntry> {
        self.registries
            .values()
            .find(|e| e.mirror_of.as_deref() == Some(upstream_host))
            .or_else(|| {
                self.registries.values().find(|e| {
                    matches!(&e.endpoint, RegistryEndpoint::Http { host, prefix: None, .. } if host == upstream_host)
                })
            })
    }

    /// How an entry appears in addresses and messages: `host[/prefix]` for a registry, the
    /// entry name for a layout directory (its path is a machine-local detail).
    pub fn display_host(&self, entry: &RegistryEntry) -> String {
        match &entry.endpoint {
            RegistryEndpoint::Http {
                host,
                prefix: Some(prefix),
                ..
            } => format!("{host}/{prefix}"),
            RegistryEndpoint::Http { host, .. } => host.clone(),
            RegistryEndpoint::Layout { .. } => entry.name.clone(),
        }
    }
}

/// Default policy directory, relative to the config file's directory (or the working
/// directory when there is no config file).
pub const DEFAULT_POLICIES_DIR: &str = "policies";
/// Default annotation prefix of houba's stamp keys.
pub const DEFAULT_LABEL_PREFIX: &str = "io.houba";
/// Default share of a repository's managed tags one `--auto` run may prune.
pub const DEFAULT_MAX_PRUNE_FRACTION: f64 = 0.5;
/// The file looked up when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "houba.toml";

/// The process environment, as the map `load_settings` takes. This is the only place houba
/// reads `std::env`; variables that are not valid UTF-8 are skipped.
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Reads the configuration: the config file (`--config`, else `HOUBA_CONFIG`, else
/// `./houba.toml`, else `houba.toml` next to the first `--policies` directory, when present),
/// then `HOUBA_*` variables from `env` over it, then `--policies` flags over everything.
pub fn load_settings(
    config_flag: Option<&Path>,
    policies_flag: &[PathBuf],
    env: &BTreeMap<String, String>,
) -> Result<Settings, ConfigError> {
    let explicit = config_flag
        .map(Path::to_path_buf)
        .or_else(|| non_empty(env, "HOUBA_CONFIG").map(PathBuf::from));
    let config_file = explicit
        .clone()
        .or_else(|| discover_config(Path::new("."), policies_flag));
    let file = match &config_file {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some((path.as_path(), text)),
            Err(err) => {
                let origin = if config_flag.is_some() {
                    Origin::Flag { name: "--config" }
                } else if explicit.is_some() {
                    Origin::Env {
                        var: "HOUBA_CONFIG",
                    }
                } else {
                    Origin::Merged
                };
                return Err(ConfigError::new(
                    origin,
                    "",
                    None,
                    format!("cannot read configuration file {}: {err}", path.display()),
                    Some("check the path, or omit --config / HOUBA_CONFIG to run without a config file".to_string()),
                ));
            }
        },
    };
    let mut settings = settings_from_sources(
        file.as_ref().map(|(p, t)| (*p, t.as_str())),
        policies_flag,
        env,
    )?;
    read_ca_certs(&mut settings)?;
    Ok(settings)
}

/// Reads each registry's `ca_cert` file, once, so that clients get the bytes.
fn read_ca_certs(settings: &mut Settings) -> Result<(), ConfigError> {
    for (name, entry) in &mut settings.registries {
        if let RegistryEndpoint::Http {
            ca_cert: Some(ca), ..
        } = &mut entry.endpoint
        {
            ca.pem = std::fs::read(&ca.path).map_err(|err| {
                ConfigError::new(
                    Origin::Merged,
                    &format!("registries.{name}.ca_cert"),
                    None,
                    format!("cannot read CA certificate {}: {err}", ca.path.display()),
                    Some("point `ca_cert` at a readable PEM file (relative paths are relative to houba.toml)".to_string()),
                )
            })?;
        }
    }
    Ok(())
}

/// `houba.toml` in the working directory `cwd`, else beside the first policy directory.
fn discover_config(cwd: &Path, policies_flag: &[PathBuf]) -> Option<PathBuf> {
    let here = cwd.join(DEFAULT_CONFIG_FILE);
    if here.is_file() {
        return Some(if cwd == Path::new(".") {
            PathBuf::from(DEFAULT_CONFIG_FILE)
        } else {
            here
        });
    }
    let beside = policies_flag.first()?.parent()?.join(DEFAULT_CONFIG_FILE);
    beside.is_file().then_some(beside)
}

fn non_empty<'e>(env: &'e BTreeMap<String, String>, var: &str) -> Option<&'e str> {
    env.get(var)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

/// The pure part of loading: one optional config file's text, the environment, the flags.
fn settings_from_sources(
    file: Option<(&Path, &str)>,
    policies_flag: &[PathBuf],
    env: &BTreeMap<String, String>,
) -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    let mut file_layer = Layer::default();
    let mut file_operations = operations::Operations::default();
    // Every problem of the file and of the environment is reported in one run.
    let mut problems = Problems::default();
    if let Some((path, text)) = file {
        let doc = toml::de::DeTable::parse(text).map_err(|err| {
            ConfigError::new(
                Origin::File { path, text },
                "",
                err.span(),
                format!("invalid TOML: {}", err.message().trim_end()),
                Some("fix the TOML syntax at the marked position".to_string()),
            )
        })?;
        let root = Node::from_toml_document(&doc);
        // Snippets are cut from this copy, where secret values are masked.
        let shown = tree::redact_secrets(text, &root);
        let origin = Origin::File { path, text: &shown };
        let base_dir = path.parent().unwrap_or(Path::new(""));
        file_layer = problems
            .take(Ctx { origin, base_dir }.file_layer(&root))
            .unwrap_or_default();
        file_operations = problems
            .take(Ctx { origin, base_dir }.operations(&root, env))
            .unwrap_or_default();
        settings.config_file = Some(path.to_path_buf());
        settings.policies = vec![base_dir.join(DEFAULT_POLICIES_DIR)];
    }
    let env_layer = problems.take(env_layer(env)).unwrap_or_default();
    problems.finish(())?;

    settings.registries = file_layer.registries;
    settings.registries.extend(env_layer.registries);
    settings.ca_certs = file_layer.ca_certs;
    settings.package_mirrors = file_layer.package_mirrors;
    settings.sbom = file_layer.evidence.sbom.take().unwrap_or_default();
    let signing_source = file_layer.evidence.signing.take();
    let (file_layer, env_layer) = (
        (
            file_layer.log_format,
            file_layer.label_prefix,
            file_layer.concurrency,
            file_layer.max_prune_fraction,
            file_layer.policies,
        ),
        (
            env_layer.log_format,
            env_layer.label_prefix,
            env_layer.concurrency,
            env_layer.max_prune_fraction,
            env_layer.policies,
        ),
    );
    if let Some(v) = env_layer.0.or(file_layer.0) {
        settings.log_format = v;
    }
    if let Some(v) = env_layer.1.or(file_layer.1) {
        settings.label_prefix = v;
    }
    if let Some(v) = env_layer.2.or(file_layer.2) {
        settings.concurrency = v;
    }
    if let Some(v) = env_layer.3.or(file_layer.3) {
        settings.max_prune_fraction = v;
    }
    if let Some(v) = env_layer.4.or(file_layer.4) {
        settings.policies = v;
    }
    if !policies_flag.is_empty() {
        settings.policies = policies_flag.to_vec();
    }
    settings.builders = Builders::from_env(env);
    settings.operations = operations::Operations {
        metrics: operations::metrics_from_env(file_operations.metrics, env)?,
        notify: file_operations.notify,
    };
    settings.signing = evidence::resolve_signing(signing_source, env, &settings.policies)?;
    settings.sbom.syft = find_on_path(env.get("PATH").map(String::as_str).unwrap_or(""), "syft");
    check_single_mirror(&settings)?;
    Ok(settings)
}

/// Reads the `HOUBA_*` variables that override the file.
fn env_layer(env: &BTreeMap<String, String>) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    let mut problems = Problems::default();
    let ctx = |var| Ctx {
        origin: Origin::Env { var },
        base_dir: Path::new(""),
    };
    let string = |text: &str| Node {
        value: Value::Str(text.to_string()),
        span: None,
    };
    if let Some(text) = non_empty(env, "HOUBA_REGISTRIES") {
        let var = "HOUBA_REGISTRIES";
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(json) => {
                layer.registries = problems
                    .take(ctx(var).registries("registries", &Node::from_json(&json)))
                    .unwrap_or_default();
            }
            Err(err) => problems.push(ConfigError::new(
                Origin::Env { var },
                "registries",
                None,
                format!("invalid JSON at line {}, column {}", err.line(), err.column()),
                Some(r#"give a JSON object of roster entries, e.g. {"local":{"host":"registry.example:5000","tls_verify":false}}"#.to_string()),
            )),
        }
    }
    if let Some(text) = non_empty(env, "HOUBA_LOG_FORMAT") {
        layer.log_format =
            problems.take(ctx("HOUBA_LOG_FORMAT").log_format("log_format", &string(text)));
    }
    if let Some(text) = non_empty(env, "HOUBA_LABEL_PREFIX") {
        layer.label_prefix =
            problems.take(ctx("HOUBA_LABEL_PREFIX").label_prefix("label_prefix", &string(text)));
    }
    if let Some(text) = non_empty(env, "HOUBA_CONCURRENCY") {
        layer.concurrency = problems
            .take(ctx("HOUBA_CONCURRENCY").concurrency("concurrency", &parse::env_scalar(text)));
    }
    if let Some(text) = non_empty(env, "HOUBA_MAX_PRUNE_FRACTION") {
        layer.max_prune_fraction = problems.take(
            ctx("HOUBA_MAX_PRUNE_FRACTION")
                .prune_fraction("max_prune_fraction", &parse::env_scalar(text)),
        );
    }
    if let Some(text) = non_empty(env, "HOUBA_POLICIES") {
        layer.policies = Some(
            text.split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
        );
    }
    problems.finish(layer)
}

/// Two entries standing in for the same upstream would make reads ambiguous.
fn check_single_mirror(settings: &Settings) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for entry in settings.registries.values() {
        if let Some(upstream) = entry.mirror_of.as_deref()
            && let Some(first) = seen.insert(upstream, &entry.name)
        {
            return Err(ConfigError::new(
                Origin::Merged,
                &format!("registries.{}.mirror_of", entry.name),
                None,
                format!("`{upstream}` is already mirrored by entry `{first}`"),
                Some("keep `mirror_of` on one entry per upstream host".to_string()),
            ));
        }
    }
    Ok(())
}
