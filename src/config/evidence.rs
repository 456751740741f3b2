//! `[sbom]` and `[signing]`: which SBOM formats houba attaches and how, and the key it signs
//! with. The key is read here, once, from a file or an environment variable (never inline in
//! houba.toml, never from a policy directory); it never reaches output: its `Debug` is redacted
//! and it is not serialised (so it is not part of a saved plan's inputs digest either).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::parse::Ctx;
use super::tree::{ConfigError, Node, Origin, Value, join_key};

/// How SBOMs are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SbomGenerator {
    /// houba reads the package databases in the layers itself.
    #[default]
    Native,
    /// `syft` (on PATH) scans the placed image; for language ecosystems.
    Syft,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// `[sbom]`: which SBOMs every placed digest carries, and what writes them.
pub struct SbomSettings {
    /// Formats attached to every placed digest, in a fixed order: `spdx`, `cyclonedx`.
    pub formats: Vec<String>,
    /// What writes the SBOMs.
    pub generator: SbomGenerator,
    /// `syft` found on `PATH` (read from the environment here, like the image builders).
    #[serde(skip)]
    pub syft: Option<PathBuf>,
}

impl Default for SbomSettings {
    fn default() -> Self {
        SbomSettings {
            formats: vec!["spdx".into(), "cyclonedx".into()],
            generator: SbomGenerator::Native,
            syft: None,
        }
    }
}

/// A private key's PEM text. Never printed, never serialised.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretPem(String);

impl SecretPem {
    /// The PEM text, for the signer alone.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// `[signing]`: the key cosign-compatible signatures are made with.
pub struct SigningSettings {
    /// Where the key came from, for messages: `file <path>` or `environment variable <NAME>`.
    pub origin: String,
    #[serde(skip)]
    /// The private key.
    pub key: SecretPem,
}

/// What the file says before the key is read.
#[derive(Debug, Default)]
pub(super) struct EvidenceLayer {
    pub sbom: Option<SbomSettings>,
    pub signing: Option<KeySource>,
}

#[derive(Debug, Clone)]
pub(super) enum KeySource {
    File { path: PathBuf, key: String },
    Env { var: String, key: String },
}

const FORMATS: &[&str] = &["spdx", "cyclonedx"];

impl Ctx<'_> {
    pub(super) fn sbom(&self, key: &str, node: &Node) -> Result<SbomSettings, ConfigError> {
        let table = self.table(key, node)?;
        self.known_keys(key, table, &["formats", "generator"])?;
        let mut settings = SbomSettings::default();
        for e in table {
            let k = join_key(key, &e.name);
            match e.name.as_str() {
                "formats" => {
                    let Value::Array(items) = &e.node.value else {
                        return Err(self.expected(&k, &e.node, "an array of format names"));
                    };
                    let mut formats = Vec::new();
                    for item in items {
                        let name = self.string(&k, item)?;
                        if !FORMATS.contains(&name) {
                            return Err(self.err_help(
                                &k,
                                &item.span,
                                format!("unknown SBOM format `{name}`"),
                                "accepted formats: spdx, cyclonedx",
                            ));
                        }
                        formats.push(name.to_owned());
                    }
                    if formats.is_empty() {
                        return Err(self.err_help(
                            &k,
                            &e.node.span,
                            "must name at least one format",
                            "every placed image gets an SBOM; choose which formats, e.g. [\"spdx\"]",
                        ));
                    }
                    formats.sort_by_key(|f| FORMATS.iter().position(|x| x == f));
                    formats.dedup();
                    settings.formats = formats;
                }
                "generator" => {
                    settings.generator = match self.string(&k, &e.node)? {
                        "native" => SbomGenerator::Native,
                        "syft" => SbomGenerator::Syft,
                        other => {
                            return Err(self.err_help(
                                &k,
                                &e.node.span,
                                format!("unknown SBOM generator `{other}`"),
                                "use \"native\" (houba reads the package databases) or \"syft\"",
                            ));
                        }
                    }
                }
                _ => unreachable!("known_keys checked the key set"),
            }
        }
        Ok(settings)
    }

    pub(super) fn signing(&self, key: &str, node: &Node) -> Result<KeySource, ConfigError> {
        let table = self.table(key, node)?;
        if let Some(e) = table
            .iter()
            .find(|e| matches!(e.name.as_str(), "key" | "pem" | "private_key"))
        {
            return Err(self.err_help(
                &join_key(key, &e.name),
                &e.key_span,
                "a signing key is never written in houba.toml",
                "put the PEM in a file outside the policy repository (`key_file`) or in an environment variable (`key_env`)",
            ));
        }
        self.known_keys(key, table, &["key_file", "key_env"])?;
        match table {
            [e] if e.name == "key_file" => Ok(KeySource::File {
                path: self.path(&join_key(key, "key_file"), &e.node)?,
                key: join_key(key, "key_file"),
            }),
            [e] if e.name == "key_env" => {
                let var = self.non_empty_string(&join_key(key, "key_env"), &e.node)?;
                Ok(KeySource::Env {
                    var: var.to_owned(),
                    key: join_key(key, "key_env"),
                })
            }
            [] => Err(self.err_help(
                key,
                &node.span,
                "names no key",
                "set `key_file = \"/path/to/key.pem\"` or `key_env = \"HOUBA_SIGNING_KEY\"`; leave `[signing]` out to sign nothing",
            )),
            _ => Err(self.err_help(
                key,
                &node.span,
                "sets both `key_file` and `key_env`",
                "keep one of them",
            )),
        }
    }
}

fn within(path: &Path, dir: &Path) -> bool {
    match (path.canonicalize(), dir.canonicalize()) {
        (Ok(p), Ok(d)) => p.starts_with(d),
        _ => false,
    }
}

/// Reads the signing key (the only place it is read), refusing one inside a policy directory.
pub(super) fn resolve_signing(
    source: Option<KeySource>,
    env: &BTreeMap<String, String>,
    policies: &[PathBuf],
) -> Result<Option<SigningSettings>, ConfigError> {
    let Some(source) = source else {
        return Ok(None);
    };
    let err = |key: &str, msg: String, help: &str| {
        ConfigError::new(Origin::Merged, key, None, msg, Some(help.to_owned()))
    };
    match source {
        KeySource::File { path, key } => {
            if let Some(dir) = policies.iter().find(|d| within(&path, d)) {
                return Err(err(
                    &key,
                    format!(
                        "{} is inside the policy directory {}",
                        path.display(),
                        dir.display()
                    ),
                    "keep private keys out of the policy repository: mount the key from a secret store and point `key_file` at it",
                ));
            }
            let pem = std::fs::read_to_string(&path).map_err(|e| {
                err(
                    &key,
                    format!("cannot read the signing key {}: {e}", path.display()),
                    "check the path and its permissions",
                )
            })?;
            Ok(Some(SigningSettings {
                origin: format!("file {}", path.display()),
                key: SecretPem(pem),
            }))
        }
        KeySource::Env { var, key } => match env.get(&var).filter(|v| !v.trim().is_empty()) {
            Some(pem) => Ok(Some(SigningSettings {
                origin: format!("environment variable {var}"),
                key: SecretPem(pem.clone()),
            })),
            None => Err(err(
                &key,
                format!("environment variable {var} is not set"),
                "export the PEM text of the signing key in that variable, or remove `[signing]`",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<super::super::Settings, ConfigError> {
        let env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        super::super::settings_from_sources(Some((Path::new("conf/houba.toml"), text)), &[], &env)
    }

    #[test]
    fn sbom_formats_are_chosen_never_switched_off() {
        let s = load(
            "[sbom]\nformats = [\"cyclonedx\", \"spdx\"]\ngenerator = \"syft\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.sbom.formats, vec!["spdx", "cyclonedx"], "fixed order");
        assert_eq!(s.sbom.generator, SbomGenerator::Syft);
        assert_eq!(load("", &[]).unwrap().sbom, SbomSettings::default());
        let e = load("[sbom]\nformats = []\n", &[]).unwrap_err();
        assert_eq!(e.key(), "sbom.formats");
        let e = load("[sbom]\nformats = [\"swid\"]\n", &[]).unwrap_err();
        assert!(e.message().contains("swid"), "{e}");
        let e = load("[sbom]\nenabled = false\n", &[]).unwrap_err();
        assert_eq!(e.key(), "sbom.enabled");
        assert_eq!(e.location(), "conf/houba.toml:2:1");
    }

    #[test]
    fn signing_keys_come_from_a_variable_or_a_file_never_inline() {
        let pem = "-----BEGIN PRIVATE KEY-----\nsecret-material\n-----END PRIVATE KEY-----\n";
        let s = load("[signing]\nkey_env = \"K\"\n", &[("K", pem)]).unwrap();
        let signing = s.signing.unwrap();
        assert_eq!(signing.key.expose(), pem);
        assert_eq!(signing.origin, "environment variable K");
        let e = load("[signing]\nkey = \"secret-material\"\n", &[]).unwrap_err();
        assert_eq!(e.location(), "conf/houba.toml:2:1");
        let shown = format!("{:?}", miette::Report::new(e));
        assert!(!shown.contains("secret-material"), "{shown}");
        let e = load("[signing]\n", &[]).unwrap_err();
        assert_eq!(e.key(), "signing");
        let e = load("[signing]\nkey_file = \"a\"\nkey_env = \"B\"\n", &[]).unwrap_err();
        assert!(e.message().contains("both"), "{e}");
        assert!(load("", &[]).unwrap().signing.is_none(), "off by default");
    }

    #[test]
    fn the_key_is_redacted_and_not_serialised() {
        let s = SigningSettings {
            origin: "environment variable K".into(),
            key: SecretPem("-----BEGIN PRIVATE KEY-----secret".into()),
        };
        assert!(!format!("{s:?}").contains("secret"));
        assert!(!serde_json::to_string(&s).unwrap().contains("secret"));
    }

    #[test]
    fn a_key_inside_a_policy_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "x").unwrap();
        let source = KeySource::File {
            path: key,
            key: "signing.key_file".into(),
        };
        let e = resolve_signing(Some(source), &BTreeMap::new(), &[dir.path().to_path_buf()])
            .unwrap_err();
        assert!(e.to_string().contains("policy directory"), "{e}");
        let missing = KeySource::Env {
            var: "NOPE".into(),
            key: "signing.key_env".into(),
        };
        assert!(resolve_signing(Some(missing), &BTreeMap::new(), &[]).is_err());
    }
}
