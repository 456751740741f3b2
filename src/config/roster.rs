//! The registry roster: `[registries.<name>]` entries, from the file or `HOUBA_REGISTRIES`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::parse::{Ctx, DEFAULT_CONCURRENCY, Problems, Table};
use super::tree::{ConfigError, Node, join_key};
use super::{Credentials, RegistryEndpoint, RegistryEntry};

impl Ctx<'_> {
    pub fn registries(
        &self,
        key: &str,
        node: &Node,
    ) -> Result<BTreeMap<String, RegistryEntry>, ConfigError> {
        let mut out = BTreeMap::new();
        let mut problems = Problems::default();
        for e in self.table(key, node)? {
            let entry_key = join_key(key, &e.name);
            if !valid_entry_name(&e.name) {
                problems.push(self.err_help(
                    &entry_key,
                    &e.key_span,
                    "invalid registry entry name",
                    "use letters, digits, '-', '_' or '.' (policies refer to entries by this name)",
                ));
            }
            if let Some(entry) = problems.take(self.registry_entry(&e.name, &entry_key, &e.node)) {
                out.insert(e.name.clone(), entry);
            }
        }
        problems.finish(out)
    }

    fn registry_entry(
        &self,
        name: &str,
        key: &str,
        node: &Node,
    ) -> Result<RegistryEntry, ConfigError> {
        let table = self.table(key, node)?;
        let mut problems = Problems::default();
        if let Some(e) = table.iter().find(|e| e.name == "password") {
            // The snippet shows the line with the value masked (the file's text is redacted
            // before any snippet is made).
            problems.push(self.err_help(
                &join_key(key, "password"),
                &e.key_span,
                "inline passwords are not accepted",
                "a password written into the configuration ends up in version control, \
                 process listings and CI logs. Keep `username` and either set \
                 `password_env = \"VAR\"` (the password is read from that environment \
                 variable) or `password_file = \"path\"` (read from that file)",
            ));
        }
        let allowed = [
            "password",
            "host",
            "layout",
            "tls_verify",
            "ca_cert",
            "username",
            "password_env",
            "password_file",
            "mirror_of",
            "concurrency",
        ];
        problems.take(self.known_keys(key, table, &allowed));
        let get = |name: &str| table.iter().find(|e| e.name == name);
        let sub = |name: &str| join_key(key, name);

        let mirror_of = match get("mirror_of") {
            Some(e) => problems.take(self.upstream_host(&sub("mirror_of"), &e.node)),
            None => None,
        };
        let concurrency = match get("concurrency") {
            Some(e) => problems
                .take(self.positive_int(&sub("concurrency"), &e.node))
                .unwrap_or(DEFAULT_CONCURRENCY),
            None => DEFAULT_CONCURRENCY,
        };

        let endpoint = match (get("host"), get("layout")) {
            (Some(h), Some(l)) => {
                problems.push(self.err_help(
                    &sub("layout"),
                    &l.key_span.clone().or(h.key_span.clone()),
                    "`host` and `layout` are mutually exclusive",
                    "an entry is either a registry reached over HTTP (`host`) or an OCI image \
                     layout directory (`layout`); split it into two entries",
                ));
                None
            }
            (None, None) => {
                problems.push(self.err_help(
                    key,
                    &node.span,
                    "needs `host` or `layout`",
                    "set `host = \"registry.example:5000\"` for a registry, or \
                     `layout = \"dir\"` for an OCI image layout directory",
                ));
                None
            }
            (None, Some(l)) => {
                let http_only = [
                    "tls_verify",
                    "ca_cert",
                    "username",
                    "password_env",
                    "password_file",
                ];
                for e in table
                    .iter()
                    .filter(|e| http_only.contains(&e.name.as_str()))
                {
                    problems.push(self.err_help(
                        &sub(&e.name),
                        &e.key_span,
                        "only applies to `host` entries",
                        "a `layout` entry is a local directory: remove this key",
                    ));
                }
                problems
                    .take(self.path(&sub("layout"), &l.node))
                    .map(|path| RegistryEndpoint::Layout { path })
            }
            (Some(h), None) => {
                let host = problems.take(self.host_and_prefix(&sub("host"), &h.node));
                let tls_verify = match get("tls_verify") {
                    Some(e) => problems.take(self.boolean(&sub("tls_verify"), &e.node)),
                    None => Some(true),
                };
                let ca_cert = match get("ca_cert") {
                    Some(e) => problems
                        .take(self.path(&sub("ca_cert"), &e.node))
                        .map(|path| {
                            Some(super::CaCert {
                                path,
                                pem: Vec::new(),
                            })
                        }),
                    None => Some(None),
                };
                let credentials = problems.take(self.credentials(key, table, node));
                match (host, tls_verify, ca_cert, credentials) {
                    (Some((host, prefix)), Some(tls_verify), Some(ca_cert), Some(credentials)) => {
                        Some(RegistryEndpoint::Http {
                            host,
                            prefix,
                            tls_verify,
                            ca_cert,
                            credentials,
                        })
                    }
                    _ => None,
                }
            }
        };
        let entry = endpoint.map(|endpoint| RegistryEntry {
            name: name.to_string(),
            endpoint,
            mirror_of,
            concurrency,
        });
        match entry {
            Some(entry) if problems.is_empty() => Ok(entry),
            _ => Err(problems
                .finish(())
                .expect_err("an entry is missing only when a problem was recorded")),
        }
    }

    fn credentials(
        &self,
        key: &str,
        table: Table<'_>,
        node: &Node,
    ) -> Result<Credentials, ConfigError> {
        let get = |name: &str| table.iter().find(|e| e.name == name);
        let sub = |name: &str| join_key(key, name);
        let username = match get("username") {
            Some(e) => Some(
                self.non_empty_string(&sub("username"), &e.node)?
                    .to_string(),
            ),
            None => None,
        };
        match (username, get("password_env"), get("password_file")) {
            (None, None, None) => Ok(Credentials::Ambient),
            (_, Some(_), Some(f)) => Err(self.err_help(
                &sub("password_file"),
                &f.key_span,
                "`password_env` and `password_file` are mutually exclusive",
                "keep the one that holds the password",
            )),
            (None, env, file) => {
                let e = env.or(file).expect("one of them is set in this arm");
                Err(self.err_help(
                    &sub(&e.name),
                    &e.key_span,
                    "a password source needs `username`",
                    "add `username = \"…\"` to this entry",
                ))
            }
            // An inline `password` is reported on its own; asking for a source on top of that
            // would be noise.
            (Some(_), None, None) if get("password").is_some() => Ok(Credentials::Ambient),
            (Some(_), None, None) => Err(self.err_help(
                &sub("username"),
                &node.span,
                "`username` needs a password source",
                "add `password_env = \"VAR\"` or `password_file = \"path\"`; remove `username` \
                 to use docker config.json and credential helpers instead",
            )),
            (Some(username), Some(e), None) => {
                let var = self.non_empty_string(&sub("password_env"), &e.node)?;
                Ok(Credentials::PasswordEnv {
                    username,
                    env: var.to_string(),
                })
            }
            (Some(username), None, Some(f)) => Ok(Credentials::PasswordFile {
                username,
                path: self.path(&sub("password_file"), &f.node)?,
            }),
        }
    }

    /// `host[:port][/prefix…]` → (`host[:port]`, prefix).
    fn host_and_prefix(
        &self,
        key: &str,
        node: &Node,
    ) -> Result<(String, Option<String>), ConfigError> {
        let raw = self.non_empty_string(key, node)?;
        if raw.contains("://") {
            return Err(self.err_help(
                key,
                &node.span,
                "must not carry a URL scheme",
                "write `host = \"registry.example:5000\"`; plain HTTP is chosen with \
                 `tls_verify = false`",
            ));
        }
        let trimmed = raw.trim_end_matches('/');
        let (host, prefix) = match trimmed.split_once('/') {
            Some((h, p)) => (h, Some(p)),
            None => (trimmed, None),
        };
        if !valid_host(host) {
            return Err(self.err_help(
                key,
                &node.span,
                format!("`{host}` is not a valid registry host"),
                "expected `name[:port]`, e.g. `registry.example:5000` or `ghcr.io/acme`",
            ));
        }
        if let Some(p) = prefix
            && !p.split('/').all(|seg| REPO_SEGMENT.is_match(seg))
        {
            return Err(self.err_help(
                key,
                &node.span,
                format!("`{p}` is not a valid repository path prefix"),
                "path segments are lowercase letters, digits and separators ('.', '_', '-')",
            ));
        }
        Ok((host.to_string(), prefix.map(str::to_string)))
    }

    fn upstream_host(&self, key: &str, node: &Node) -> Result<String, ConfigError> {
        let raw = self.non_empty_string(key, node)?;
        if !valid_host(raw) {
            return Err(self.err_help(
                key,
                &node.span,
                format!("`{raw}` is not a registry host"),
                "name the upstream host exactly as policies write `source.registry`, e.g. \
                 `docker.io`",
            ));
        }
        Ok(raw.to_string())
    }
}

fn valid_entry_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `name[:port]` or `[ipv6][:port]`.
fn valid_host(host: &str) -> bool {
    HOST.is_match(host)
}

static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
        .expect("static regex")
});

/// One path component of a distribution repository name.
static REPO_SEGMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("static regex"));
