//! Operations settings: `[metrics]` (Prometheus textfile and Pushgateway) and `[[notify]]`
//! sinks (ntfy, webhook, Alertmanager), plus their `HOUBA_*` variables.
//!
//! Secrets (an ntfy token, a webhook HMAC key) are never written inline: the configuration
//! names an environment variable or a file, and the value is read here, once. [`Secret`]
//! never prints or serialises its value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::parse::Ctx;
use super::tree::{ConfigError, Node, Value, join_key};

/// Everything `[metrics]` and `[[notify]]` say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Operations {
    /// `[metrics]`.
    pub metrics: MetricsSettings,
    /// `[[notify]]` sinks, in file order.
    pub notify: Vec<NotifySink>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
/// Where a run's metrics go.
pub struct MetricsSettings {
    /// node-exporter textfile written at the end of every run.
    pub file: Option<PathBuf>,
    /// Pushgateway base URL (`http://pushgateway.monitoring:9091`).
    pub pushgateway: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// How urgent a notification is.
pub enum Severity {
    /// For the record (a drift resolved, an apply recovered).
    Info,
    /// Worth a look (drift found, rate-limited).
    Warning,
    /// Needs someone now (an apply failed).
    Critical,
}

impl Severity {
    /// The name in `houba.toml` and in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// What a notification is about.
pub enum EventKind {
    /// A drift finding appeared.
    DriftFound,
    /// A drift finding is gone.
    DriftResolved,
    /// An apply failed.
    ApplyFailed,
    /// An apply succeeded after a failure.
    ApplyRecovered,
    /// A registry throttled the run (429).
    RateLimited,
}

impl EventKind {
    /// Every event kind.
    pub const ALL: [EventKind; 5] = [
        EventKind::DriftFound,
        EventKind::DriftResolved,
        EventKind::ApplyFailed,
        EventKind::ApplyRecovered,
        EventKind::RateLimited,
    ];

    /// The name in `houba.toml` and in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DriftFound => "drift_found",
            EventKind::DriftResolved => "drift_resolved",
            EventKind::ApplyFailed => "apply_failed",
            EventKind::ApplyRecovered => "apply_recovered",
            EventKind::RateLimited => "rate_limited",
        }
    }
}

/// A secret value read from an environment variable or a file. `Debug` and `Serialize` show
/// only where it comes from.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    source: String,
    value: String,
}

impl Secret {
    /// The secret value, for the one request that sends it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Where the value comes from (`env NTFY_TOKEN`, `file /run/secrets/token`).
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.source)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Settings are only ever deserialised back for comparison; the value is not kept.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Ok(Secret {
            source,
            value: String::new(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// The kind of a notification sink and its own settings.
pub enum SinkKind {
    /// An ntfy server.
    Ntfy {
        /// Topic for every severity, unless `topics` names one for it.
        topic: Option<String>,
        /// Topic per severity (`critical = "hl-crit"`, …).
        topics: BTreeMap<Severity, String>,
        /// ntfy tags added to every message.
        tags: Vec<String>,
        /// Bearer token for the server.
        token: Option<Secret>,
    },
    /// A generic JSON webhook.
    Webhook {
        /// Key of the `X-Houba-Signature` HMAC-SHA256 signature, when set.
        hmac_key: Option<Secret>,
    },
    /// An Alertmanager (`/api/v2/alerts`).
    Alertmanager {
        /// How long a firing drift alert stays active without a new run confirming it.
        alert_ttl_seconds: u64,
    },
}

impl SinkKind {
    /// `ntfy`, `webhook` or `alertmanager`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SinkKind::Ntfy { .. } => "ntfy",
            SinkKind::Webhook { .. } => "webhook",
            SinkKind::Alertmanager { .. } => "alertmanager",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// One `[[notify]]` sink.
pub struct NotifySink {
    /// Unique name (metrics label, state file); default `<kind>-<n>`.
    pub name: String,
    /// Server URL: the ntfy server, the webhook endpoint, the Alertmanager base URL.
    pub url: String,
    /// The events it is sent.
    pub events: Vec<EventKind>,
    /// The least severity it is sent.
    pub min_severity: Severity,
    /// A link put in notifications (a dashboard, the CronJob's logs).
    pub link: Option<String>,
    /// What kind of sink, with its own settings.
    pub kind: SinkKind,
}

impl NotifySink {
    /// Whether this sink is sent `event` at `severity`.
    pub fn wants(&self, event: EventKind, severity: Severity) -> bool {
        self.events.contains(&event) && severity >= self.min_severity
    }
}

/// Default lifetime of a firing Alertmanager alert: two hourly schedule periods.
pub const DEFAULT_ALERT_TTL_SECONDS: u64 = 7200;

impl Ctx<'_> {
    /// `[metrics]` and `[[notify]]` of a whole `houba.toml` document (the other keys are read,
    /// and unknown keys refused, by `file_layer`).
    pub(super) fn operations(
        &self,
        root: &Node,
        env: &BTreeMap<String, String>,
    ) -> Result<Operations, ConfigError> {
        let mut out = Operations::default();
        for e in self.table("", root)? {
            match e.name.as_str() {
                "metrics" => out.metrics = self.metrics(&e.name, &e.node)?,
                "notify" => out.notify = self.notify(&e.name, &e.node, env)?,
                _ => {}
            }
        }
        Ok(out)
    }

    pub(super) fn metrics(&self, key: &str, node: &Node) -> Result<MetricsSettings, ConfigError> {
        let table = self.table(key, node)?;
        self.known_keys(key, table, &["file", "pushgateway"])?;
        let mut out = MetricsSettings::default();
        for e in table {
            let k = join_key(key, &e.name);
            match e.name.as_str() {
                "file" => out.file = Some(self.path(&k, &e.node)?),
                _ => out.pushgateway = Some(self.service_url(&k, &e.node)?),
            }
        }
        Ok(out)
    }

    pub(super) fn service_url(&self, key: &str, node: &Node) -> Result<String, ConfigError> {
        let raw = self.non_empty_string(key, node)?;
        let parsed = reqwest::Url::parse(raw).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        });
        match parsed {
            Some(u) if u.username().is_empty() && u.password().is_none() => {
                Ok(raw.trim_end_matches('/').to_string())
            }
            Some(_) => Err(self.err_help(
                key,
                &node.span,
                "must not carry credentials in the URL",
                "remove `user:password@`; give a token with `token_env` / `token_file`",
            )),
            None => Err(self.err_help(
                key,
                &node.span,
                format!("`{raw}` is not an http(s) URL with a host"),
                "write the service's base URL, e.g. `http://pushgateway.monitoring.svc:9091`",
            )),
        }
    }

    pub(super) fn notify(
        &self,
        key: &str,
        node: &Node,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<NotifySink>, ConfigError> {
        let Value::Array(items) = &node.value else {
            return Err(self.err_help(
                key,
                &node.span,
                format!("expected an array of tables, found {}", node.describe()),
                "write one `[[notify]]` section per sink",
            ));
        };
        let mut sinks: Vec<NotifySink> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let sink = self.sink(&k, item, i, env)?;
            if sinks.iter().any(|s| s.name == sink.name) {
                return Err(self.err_help(
                    &join_key(&k, "name"),
                    &item.span,
                    format!("another sink is already named `{}`", sink.name),
                    "give every [[notify]] sink a distinct `name`",
                ));
            }
            sinks.push(sink);
        }
        Ok(sinks)
    }

    fn sink(
        &self,
        key: &str,
        node: &Node,
        index: usize,
        env: &BTreeMap<String, String>,
    ) -> Result<NotifySink, ConfigError> {
        let t = self.table(key, node)?;
        let get = |name: &str| t.iter().find(|e| e.name == name);
        let kind_entry = get("kind").ok_or_else(|| {
            self.err_help(
                key,
                &node.span,
                "names no `kind`",
                "set `kind = \"ntfy\"`, `\"webhook\"` or `\"alertmanager\"`",
            )
        })?;
        let kind_key = join_key(key, "kind");
        let kind = self.string(&kind_key, &kind_entry.node)?;
        let common = ["kind", "name", "url", "events", "min_severity", "link"];
        let specific: &[&str] = match kind {
            "ntfy" => &[
                "topic",
                "topics",
                "tags",
                "token_env",
                "token_file",
                "token",
            ],
            "webhook" => &["hmac_key_env", "hmac_key_file", "hmac_key"],
            "alertmanager" => &["alert_ttl_seconds"],
            other => {
                return Err(self.err_help(
                    &kind_key,
                    &kind_entry.node.span,
                    format!("unknown sink kind `{other}`"),
                    "use `ntfy`, `webhook` or `alertmanager`",
                ));
            }
        };
        let allowed: Vec<&str> = common.iter().chain(specific).copied().collect();
        self.known_keys(key, t, &allowed)?;
        for inline in ["token", "hmac_key"] {
            if let Some(e) = get(inline) {
                // The snippet is cut from the redacted text: the value shows as `***`.
                return Err(self.err_help(
                    &join_key(key, inline),
                    &e.key_span,
                    "secrets are never written inline in the configuration",
                    format!(
                        "put the value in an environment variable or a file and write `{inline}_env = \"VAR\"` or `{inline}_file = \"path\"`"
                    ),
                ));
            }
        }
        let url = match get("url") {
            Some(e) => self.service_url(&join_key(key, "url"), &e.node)?,
            None => {
                return Err(self.err_help(
                    key,
                    &node.span,
                    "names no `url`",
                    "set `url` to the in-cluster service address of the sink",
                ));
            }
        };
        let name = match get("name") {
            Some(e) => self
                .non_empty_string(&join_key(key, "name"), &e.node)?
                .to_string(),
            None => format!("{kind}-{index}"),
        };
        let events = match get("events") {
            Some(e) => self.events(&join_key(key, "events"), &e.node)?,
            None => EventKind::ALL.to_vec(),
        };
        let min_severity = match get("min_severity") {
            Some(e) => self.severity(&join_key(key, "min_severity"), &e.node)?,
            None => Severity::Info,
        };
        let link = match get("link") {
            Some(e) => Some(self.service_url(&join_key(key, "link"), &e.node)?),
            None => None,
        };
        let kind = match kind {
            "ntfy" => {
                let topic = match get("topic") {
                    Some(e) => Some(self.topic(&join_key(key, "topic"), &e.node)?),
                    None => None,
                };
                let mut topics = BTreeMap::new();
                if let Some(e) = get("topics") {
                    let tk = join_key(key, "topics");
                    let tt = self.table(&tk, &e.node)?;
                    self.known_keys(&tk, tt, &["critical", "warning", "info"])?;
                    for s in tt {
                        let sk = join_key(&tk, &s.name);
                        let sev = self.severity(
                            &sk,
                            &Node {
                                value: Value::Str(s.name.clone()),
                                span: s.key_span.clone(),
                            },
                        )?;
                        topics.insert(sev, self.topic(&sk, &s.node)?);
                    }
                }
                let every = [Severity::Info, Severity::Warning, Severity::Critical];
                if topic.is_none() && every.iter().any(|s| !topics.contains_key(s)) {
                    return Err(self.err_help(
                        key,
                        &node.span,
                        "an ntfy sink needs a `topic`, or `topics` for every severity",
                        "write `topic = \"houba\"`, or `topics = { critical = \"hl-crit\", warning = \"hl-warn\", info = \"hl-info\" }`",
                    ));
                }
                let tags = match get("tags") {
                    Some(e) => self.strings(&join_key(key, "tags"), &e.node)?,
                    None => vec![],
                };
                SinkKind::Ntfy {
                    topic,
                    topics,
                    tags,
                    token: self.secret(key, t, "token", env)?,
                }
            }
            "webhook" => SinkKind::Webhook {
                hmac_key: self.secret(key, t, "hmac_key", env)?,
            },
            _ => SinkKind::Alertmanager {
                alert_ttl_seconds: match get("alert_ttl_seconds") {
                    Some(e) => {
                        self.positive_int(&join_key(key, "alert_ttl_seconds"), &e.node)? as u64
                    }
                    None => DEFAULT_ALERT_TTL_SECONDS,
                },
            },
        };
        Ok(NotifySink {
            name,
            url,
            events,
            min_severity,
            link,
            kind,
        })
    }

    fn topic(&self, key: &str, node: &Node) -> Result<String, ConfigError> {
        let raw = self.non_empty_string(key, node)?;
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || raw.len() > 64
        {
            return Err(self.err_help(
                key,
                &node.span,
                format!("`{raw}` is not an ntfy topic"),
                "ntfy topics are 1–64 letters, digits, `-` or `_`, e.g. `hl-warn`",
            ));
        }
        Ok(raw.to_string())
    }

    fn strings(&self, key: &str, node: &Node) -> Result<Vec<String>, ConfigError> {
        let Value::Array(items) = &node.value else {
            return Err(self.expected(key, node, "an array of strings"));
        };
        items
            .iter()
            .map(|n| self.non_empty_string(key, n).map(str::to_string))
            .collect()
    }

    fn events(&self, key: &str, node: &Node) -> Result<Vec<EventKind>, ConfigError> {
        let Value::Array(items) = &node.value else {
            return Err(self.expected(key, node, "an array of event names"));
        };
        let names: Vec<&str> = EventKind::ALL.iter().map(|e| e.as_str()).collect();
        let mut out = Vec::new();
        for n in items {
            let s = self.string(key, n)?;
            match EventKind::ALL.iter().find(|e| e.as_str() == s) {
                Some(e) => out.push(*e),
                None => {
                    return Err(self.err_help(
                        key,
                        &n.span,
                        format!("unknown event `{s}`"),
                        format!("events are: {}", names.join(", ")),
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err(self.err_help(
                key,
                &node.span,
                "lists no event",
                "remove the key to receive every event, or list some",
            ));
        }
        Ok(out)
    }

    fn severity(&self, key: &str, node: &Node) -> Result<Severity, ConfigError> {
        match self.string(key, node)? {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(self.err_help(
                key,
                &node.span,
                format!("unknown severity `{other}`"),
                "use `info`, `warning` or `critical`",
            )),
        }
    }

    /// `<name>_env` or `<name>_file` (at most one), read now.
    fn secret(
        &self,
        key: &str,
        table: &[super::tree::Entry],
        name: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Option<Secret>, ConfigError> {
        let env_key = format!("{name}_env");
        let file_key = format!("{name}_file");
        let by_env = table.iter().find(|e| e.name == env_key);
        let by_file = table.iter().find(|e| e.name == file_key);
        match (by_env, by_file) {
            (None, None) => Ok(None),
            (Some(_), Some(f)) => Err(self.err_help(
                &join_key(key, &file_key),
                &f.key_span,
                format!("`{env_key}` and `{file_key}` are both set"),
                "keep one of them",
            )),
            (Some(e), None) => {
                let k = join_key(key, &env_key);
                let var = self.non_empty_string(&k, &e.node)?;
                match env.get(var).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                    Some(v) => Ok(Some(Secret {
                        source: format!("env {var}"),
                        value: v.to_string(),
                    })),
                    None => Err(self.err_help(
                        &k,
                        &e.node.span,
                        format!("environment variable `{var}` is not set or empty"),
                        format!("set {var} (from a Kubernetes Secret), or remove `{env_key}`"),
                    )),
                }
            }
            (None, Some(f)) => {
                let k = join_key(key, &file_key);
                let path = self.path(&k, &f.node)?;
                match std::fs::read_to_string(&path) {
                    Ok(v) if !v.trim().is_empty() => Ok(Some(Secret {
                        source: format!("file {}", path.display()),
                        value: v.trim().to_string(),
                    })),
                    Ok(_) => {
                        Err(self.err(&k, &f.node.span, format!("{} is empty", path.display())))
                    }
                    Err(err) => Err(self.err_help(
                        &k,
                        &f.node.span,
                        format!("cannot read {}: {err}", path.display()),
                        "check the path (a mounted Secret), or remove the key",
                    )),
                }
            }
        }
    }
}

/// `HOUBA_METRICS_FILE` and `HOUBA_PUSHGATEWAY` over the file's `[metrics]`.
pub(super) fn metrics_from_env(
    file: MetricsSettings,
    env: &BTreeMap<String, String>,
) -> Result<MetricsSettings, ConfigError> {
    let mut out = file;
    let non_empty = |v: &str| env.get(v).map(|s| s.trim()).filter(|s| !s.is_empty());
    if let Some(p) = non_empty("HOUBA_METRICS_FILE") {
        out.file = Some(PathBuf::from(p));
    }
    if let Some(u) = non_empty("HOUBA_PUSHGATEWAY") {
        let ctx = Ctx {
            origin: super::tree::Origin::Env {
                var: "HOUBA_PUSHGATEWAY",
            },
            base_dir: std::path::Path::new(""),
        };
        out.pushgateway = Some(ctx.service_url(
            "metrics.pushgateway",
            &Node {
                value: Value::Str(u.to_string()),
                span: None,
            },
        )?);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "operations_tests.rs"]
mod tests;
