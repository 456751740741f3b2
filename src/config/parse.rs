//! Validation of the value tree into typed settings, one key at a time, so every error names
//! the exact key that is wrong.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::tree::{ConfigError, Entry, Node, Origin, Value, join_key};
use super::{CaSource, LogFormat, PackageMirror, RegistryEntry};

/// Default per-registry and global concurrency.
pub(super) const DEFAULT_CONCURRENCY: usize = 8;

/// Everything a configuration source (file or environment) may set; `None` = not set there.
#[derive(Debug, Default)]
pub(super) struct Layer {
    pub registries: BTreeMap<String, RegistryEntry>,
    pub ca_certs: BTreeMap<String, CaSource>,
    pub package_mirrors: BTreeMap<String, PackageMirror>,
    pub log_format: Option<LogFormat>,
    pub label_prefix: Option<String>,
    pub concurrency: Option<usize>,
    pub max_prune_fraction: Option<f64>,
    pub policies: Option<Vec<PathBuf>>,
    pub evidence: super::evidence::EvidenceLayer,
}

/// Validation context: where values come from and what relative paths are relative to.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub origin: Origin<'a>,
    pub base_dir: &'a Path,
}

pub(super) type Table<'n> = &'n [Entry];

/// The problems found so far: validation records one and goes on with the next key, so a
/// single run reports them all.
#[derive(Default)]
pub(super) struct Problems(Vec<ConfigError>);

impl Problems {
    /// The value, or `None` with the problem recorded.
    pub fn take<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn push(&mut self, e: ConfigError) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `value` when nothing was recorded, else one error carrying every problem.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        match ConfigError::merge(self.0) {
            None => Ok(value),
            Some(e) => Err(e),
        }
    }
}

impl<'a> Ctx<'a> {
    pub(super) fn err(
        &self,
        key: &str,
        span: &Option<Range<usize>>,
        msg: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(self.origin, key, span.clone(), msg, None)
    }

    pub(super) fn err_help(
        &self,
        key: &str,
        span: &Option<Range<usize>>,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(self.origin, key, span.clone(), msg, Some(help.into()))
    }

    pub(super) fn expected(&self, key: &str, node: &Node, what: &str) -> ConfigError {
        let help = match what {
            "a boolean" => "write `true` or `false`, without quotes".to_string(),
            "a string" => "put the value in double quotes".to_string(),
            "a table" => format!("write a `[{key}]` section or an inline table `{{ … }}`"),
            w if w.contains("integer") => "write a whole number without quotes, e.g. 8".to_string(),
            "a number" => "write a number without quotes, e.g. 0.5".to_string(),
            _ => format!("give `{key}` {what}"),
        };
        self.err_help(
            key,
            &node.span,
            format!("expected {what}, found {}", node.describe()),
            help,
        )
    }

    pub fn table<'n>(&self, key: &str, node: &'n Node) -> Result<Table<'n>, ConfigError> {
        match &node.value {
            Value::Table(entries) => Ok(entries),
            _ => Err(self.expected(key, node, "a table")),
        }
    }

    pub(super) fn string<'n>(&self, key: &str, node: &'n Node) -> Result<&'n str, ConfigError> {
        match &node.value {
            Value::Str(s) => Ok(s),
            _ => Err(self.expected(key, node, "a string")),
        }
    }

    pub(super) fn non_empty_string<'n>(
        &self,
        key: &str,
        node: &'n Node,
    ) -> Result<&'n str, ConfigError> {
        let s = self.string(key, node)?;
        if s.trim().is_empty() {
            return Err(self.err(key, &node.span, "must not be empty"));
        }
        Ok(s)
    }

    pub(super) fn boolean(&self, key: &str, node: &Node) -> Result<bool, ConfigError> {
        match node.value {
            Value::Bool(b) => Ok(b),
            _ => Err(self.expected(key, node, "a boolean")),
        }
    }

    pub(super) fn positive_int(&self, key: &str, node: &Node) -> Result<usize, ConfigError> {
        match node.value {
            Value::Int(n) if n > 0 => usize::try_from(n)
                .map_err(|_| self.err(key, &node.span, "is too large for this machine")),
            Value::Int(_) => Err(self.err_help(
                key,
                &node.span,
                "must be greater than 0",
                "set a positive number of concurrent requests, e.g. 8",
            )),
            _ => Err(self.expected(key, node, "a positive integer")),
        }
    }

    pub(super) fn path(&self, key: &str, node: &Node) -> Result<PathBuf, ConfigError> {
        Ok(self.base_dir.join(self.non_empty_string(key, node)?))
    }

    /// Rejects keys outside `allowed`, naming the key and listing the accepted ones.
    pub(super) fn known_keys(
        &self,
        prefix: &str,
        table: Table<'_>,
        allowed: &[&str],
    ) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        for e in table.iter().filter(|e| !allowed.contains(&e.name.as_str())) {
            problems.push(self.err_help(
                &join_key(prefix, &e.name),
                &e.key_span,
                "unknown key",
                format!("accepted keys here: {}", allowed.join(", ")),
            ));
        }
        problems.finish(())
    }

    /// Reads a whole `houba.toml` document.
    pub fn file_layer(&self, root: &Node) -> Result<Layer, ConfigError> {
        let table = self.table("", root)?;
        let mut problems = Problems::default();
        problems.take(self.known_keys(
            "",
            table,
            &[
                "registries",
                "ca_certs",
                "package_mirrors",
                "log_format",
                "label_prefix",
                "concurrency",
                "max_prune_fraction",
                "policies",
                "metrics",
                "notify",
                "sbom",
                "signing",
            ],
        ));
        let mut layer = Layer::default();
        for e in table {
            let key = join_key("", &e.name);
            let node = &e.node;
            let p = &mut problems;
            match e.name.as_str() {
                "registries" => {
                    layer.registries = p.take(self.registries(&key, node)).unwrap_or_default()
                }
                "ca_certs" => {
                    layer.ca_certs = p.take(self.ca_certs(&key, node)).unwrap_or_default()
                }
                "package_mirrors" => {
                    layer.package_mirrors =
                        p.take(self.package_mirrors(&key, node)).unwrap_or_default()
                }
                "log_format" => layer.log_format = p.take(self.log_format(&key, node)),
                "label_prefix" => layer.label_prefix = p.take(self.label_prefix(&key, node)),
                "concurrency" => layer.concurrency = p.take(self.positive_int(&key, node)),
                "max_prune_fraction" => {
                    layer.max_prune_fraction = p.take(self.prune_fraction(&key, node))
                }
                "policies" => layer.policies = p.take(self.policies(&key, node)),
                // Unknown keys are reported by known_keys above; `metrics` and `notify` are read by
                // `operations`, which also needs the environment for secrets.
                "sbom" => layer.evidence.sbom = p.take(self.sbom(&key, node)),
                "signing" => layer.evidence.signing = p.take(self.signing(&key, node)),
                // Reported by known_keys above.
                _ => {}
            }
        }
        problems.finish(layer)
    }

    fn ca_certs(&self, key: &str, node: &Node) -> Result<BTreeMap<String, CaSource>, ConfigError> {
        let mut out = BTreeMap::new();
        let mut problems = Problems::default();
        for e in self.table(key, node)? {
            if let Some(source) = problems.take(self.ca_cert(key, e)) {
                out.insert(e.name.clone(), source);
            }
        }
        problems.finish(out)
    }

    fn ca_cert(&self, key: &str, e: &Entry) -> Result<CaSource, ConfigError> {
        {
            let k = join_key(key, &e.name);
            let t = self.table(&k, &e.node)?;
            self.known_keys(&k, t, &["path", "pem"])?;
            let source = match t {
                [one] if one.name == "path" => {
                    CaSource::Path(self.path(&join_key(&k, "path"), &one.node)?)
                }
                [one] if one.name == "pem" => {
                    let pem = self.string(&join_key(&k, "pem"), &one.node)?;
                    if !pem.contains("-----BEGIN CERTIFICATE-----") {
                        return Err(self.err_help(
                            &join_key(&k, "pem"),
                            &one.node.span,
                            "is not a PEM certificate",
                            "paste the certificate including its `-----BEGIN CERTIFICATE-----` \
                             line, or use `path = \"ca.crt\"`",
                        ));
                    }
                    CaSource::Pem(pem.to_string())
                }
                _ => {
                    return Err(self.err_help(
                        &k,
                        &e.node.span,
                        "needs exactly one of `path` or `pem`",
                        "write `{ path = \"certs/ca.crt\" }` or `{ pem = \"-----BEGIN CERTIFICATE-----…\" }`",
                    ));
                }
            };
            Ok(source)
        }
    }

    fn package_mirrors(
        &self,
        key: &str,
        node: &Node,
    ) -> Result<BTreeMap<String, PackageMirror>, ConfigError> {
        let mut out = BTreeMap::new();
        let mut problems = Problems::default();
        for e in self.table(key, node)? {
            let k = join_key(key, &e.name);
            let Some(t) = problems.take(self.table(&k, &e.node)) else {
                continue;
            };
            problems.take(self.known_keys(&k, t, &["apt", "apk", "yum"]));
            if t.is_empty() {
                problems.push(self.err_help(
                    &k,
                    &e.node.span,
                    "names no mirror",
                    "set at least one of `apt`, `apk`, `yum` to a base URL",
                ));
                continue;
            }
            let mut mirror = PackageMirror::default();
            for m in t {
                let url = problems.take(self.http_url(&join_key(&k, &m.name), &m.node));
                match m.name.as_str() {
                    "apt" => mirror.apt = url,
                    "apk" => mirror.apk = url,
                    "yum" => mirror.yum = url,
                    _ => {}
                }
            }
            out.insert(e.name.clone(), mirror);
        }
        problems.finish(out)
    }

    fn http_url(&self, key: &str, node: &Node) -> Result<String, ConfigError> {
        let raw = self.non_empty_string(key, node)?;
        let ok = reqwest::Url::parse(raw)
            .map(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
            })
            .unwrap_or(false);
        if !ok {
            return Err(self.err_help(
                key,
                &node.span,
                format!("`{raw}` is not an http(s) URL with a host"),
                "write the mirror's base URL, e.g. `https://deb.example.org/debian`",
            ));
        }
        Ok(raw.to_string())
    }

    pub fn log_format(&self, key: &str, node: &Node) -> Result<LogFormat, ConfigError> {
        match self.string(key, node)? {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(self.err_help(
                key,
                &node.span,
                format!("unknown log format `{other}`"),
                "use `text` or `json`",
            )),
        }
    }

    pub fn label_prefix(&self, key: &str, node: &Node) -> Result<String, ConfigError> {
        let raw = self.string(key, node)?;
        if !LABEL_PREFIX.is_match(raw) {
            return Err(self.err_help(
                key,
                &node.span,
                format!("`{raw}` is not a reverse-DNS annotation prefix"),
                "use at least two lowercase dot-separated labels of letters, digits and '-', \
                 e.g. `io.houba` or `com.example.mirror`",
            ));
        }
        Ok(raw.to_string())
    }

    pub fn concurrency(&self, key: &str, node: &Node) -> Result<usize, ConfigError> {
        self.positive_int(key, node)
    }

    pub fn prune_fraction(&self, key: &str, node: &Node) -> Result<f64, ConfigError> {
        let x = match node.value {
            Value::Float(x) => x,
            Value::Int(n) => n as f64,
            _ => return Err(self.expected(key, node, "a number")),
        };
        if !(x > 0.0 && x <= 1.0) {
            return Err(self.err_help(
                key,
                &node.span,
                format!("{x} is outside (0, 1]"),
                "give the largest share of a repository's managed tags one `--auto` run may \
                 prune, e.g. 0.5; 1 allows pruning everything",
            ));
        }
        Ok(x)
    }

    fn policies(&self, key: &str, node: &Node) -> Result<Vec<PathBuf>, ConfigError> {
        let Value::Array(items) = &node.value else {
            return Err(self.expected(key, node, "an array of directories"));
        };
        if items.is_empty() {
            return Err(self.err_help(
                key,
                &node.span,
                "lists no directory",
                "remove the key to use `policies`, or list at least one directory",
            ));
        }
        items.iter().map(|n| self.path(key, n)).collect()
    }
}

/// Parses a scalar given as an environment variable's text into a node of the right type, so
/// that the same validators as for the file apply.
pub(super) fn env_scalar(text: &str) -> Node {
    let value = if let Ok(n) = text.trim().parse::<i64>() {
        Value::Int(n)
    } else if let Ok(x) = text.trim().parse::<f64>() {
        Value::Float(x)
    } else {
        Value::Str(text.to_string())
    };
    Node { value, span: None }
}

static LABEL_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")
        .expect("static regex")
});
