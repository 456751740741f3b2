//! Registry authentication: credentials (roster, docker `config.json`, credential helpers),
//! `WWW-Authenticate` challenges, and the bearer token flow with a token cache per scope set.
//!
//! Secrets live only in `Secret`, whose `Debug` redacts them; error messages built here name
//! the registry and the credential source, never the secret itself.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use super::{RegistryError, Result};
use crate::config::Credentials;

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// Username and password (HTTP basic, or exchanged for a bearer token).
    Basic {
        /// The user name.
        username: String,
        /// The password, never printed (see the `Debug` impl).
        password: String,
    },
    /// A docker identity (refresh) token, exchanged at the token realm.
    IdentityToken(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Basic { username, .. } => write!(
                f,
                "Basic {{ username: {username:?}, password: <redacted> }}"
            ),
            Secret::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

impl Secret {
    /// The secret text itself, so messages can be scrubbed of it.
    pub(crate) fn secret_text(&self) -> &str {
        match self {
            Secret::Basic { password, .. } => password,
            Secret::IdentityToken(token) => token,
        }
    }

    fn basic_header(&self) -> Option<String> {
        match self {
            Secret::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Secret::IdentityToken(_) => None,
        }
    }
}

/// How to look up an environment variable (the caller decides where values come from).
pub type EnvLookup = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The docker `config.json` key for a registry host.
fn docker_config_key(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    }
}

/// Resolve the roster credentials of `registry` (`host[:port]`) into a secret.
pub fn resolve(
    registry: &str,
    credentials: &Credentials,
    env: &EnvLookup,
    docker_config: Option<&Path>,
) -> Result<Option<Secret>> {
    let failure = |detail: String| RegistryError::Auth {
        registry: registry.to_owned(),
        repository: "*".to_owned(),
        detail,
    };
    match credentials {
        Credentials::PasswordEnv { username, env: var } => match env(var) {
            Some(password) if !password.is_empty() => Ok(Some(Secret::Basic {
                username: username.clone(),
                password,
            })),
            _ => Err(failure(format!(
                "environment variable {var} holding the password is not set"
            ))),
        },
        Credentials::PasswordFile { username, path } => {
            let password = std::fs::read_to_string(path).map_err(|e| {
                failure(format!("cannot read password file {}: {e}", path.display()))
            })?;
            Ok(Some(Secret::Basic {
                username: username.clone(),
                password: password.trim_end_matches(['\r', '\n']).to_owned(),
            }))
        }
        Credentials::Ambient => {
            let Some(path) = docker_config else {
                return Ok(None);
            };
            let Ok(file) = std::fs::File::open(path) else {
                return Ok(None);
            };
            use docker_credential::{CredentialRetrievalError as E, DockerCredential};
            match docker_credential::get_credential_from_reader(
                std::io::BufReader::new(file),
                docker_config_key(registry),
            ) {
                Ok(DockerCredential::UsernamePassword(username, password)) => {
                    Ok(Some(Secret::Basic { username, password }))
                }
                Ok(DockerCredential::IdentityToken(token)) => {
                    Ok(Some(Secret::IdentityToken(token)))
                }
                Err(E::NoCredentialConfigured | E::ConfigNotFound | E::ConfigReadError) => Ok(None),
                Err(e) => Err(failure(format!(
                    "docker config {} (credential helper or auths entry): {e}",
                    path.display()
                ))),
            }
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic authentication.
    Basic,
    /// A bearer token from `realm`.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter to send, when announced.
        service: Option<String>,
        /// The `scope` the request needs, when announced.
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header value (`Bearer realm="…",service="…",scope="…"`).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key2=value2` pairs; quoted values may contain commas.
fn parse_params(input: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    params
}

/// What the registry asked for, learned from its first challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scheme {
    Unknown,
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Longest a token is trusted without asking again, whatever the server says: a huge
/// `expires_in` must not overflow the clock or pin a revoked token for ever.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// A token server's answer: the token and how long to use it (refreshed a little early so a
/// token never expires between check and use). The error says what was wrong with the answer.
pub fn parse_token_response(body: &[u8]) -> std::result::Result<(String, Duration), String> {
    let body: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("sent an unreadable answer: {e}"))?;
    let token = body
        .token
        .or(body.access_token)
        .filter(|t| !t.is_empty())
        .ok_or("sent no token")?;
    let seconds = body
        .expires_in
        .unwrap_or(60)
        .clamp(10, MAX_TOKEN_LIFETIME.as_secs());
    Ok((token, Duration::from_secs(seconds - 5)))
}

struct CachedToken {
    token: String,
    expires: Instant,
}

/// Authentication state of one registry client.
pub(crate) struct Authenticator {
    registry: String,
    secret: Option<Secret>,
    scheme: Mutex<Scheme>,
    tokens: Mutex<HashMap<String, CachedToken>>,
}

impl Authenticator {
    pub(crate) fn new(registry: String, secret: Option<Secret>) -> Self {
        Authenticator {
            registry,
            secret,
            scheme: Mutex::new(Scheme::Unknown),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    pub(crate) fn scheme(&self) -> Scheme {
        self.scheme
            .lock()
            .map(|s| s.clone())
            .unwrap_or(Scheme::Unknown)
    }

    pub(crate) fn learn(&self, scheme: Scheme) {
        if let Ok(mut current) = self.scheme.lock() {
            *current = scheme;
        }
    }

    /// The `Authorization` header to send for `scopes`, fetching a token when the registry
    /// uses bearer auth and none is cached.
    pub(crate) async fn header(
        &self,
        client: &reqwest::Client,
        scopes: &[String],
    ) -> Result<Option<String>> {
        match self.scheme() {
            Scheme::Unknown | Scheme::Anonymous => Ok(None),
            Scheme::Basic => Ok(self.secret.as_ref().and_then(Secret::basic_header)),
            Scheme::Bearer { realm, service } => {
                let key = scopes.join(" ");
                if let Some(token) = self.cached(&key) {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let token = self
                    .fetch_token(client, &realm, service.as_deref(), scopes)
                    .await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Forget the token for `scopes` (the registry rejected it).
    pub(crate) fn forget(&self, scopes: &[String]) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&scopes.join(" "));
        }
    }

    fn cached(&self, key: &str) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        let cached = tokens.get(key)?;
        (cached.expires > Instant::now()).then(|| cached.token.clone())
    }

    async fn fetch_token(
        &self,
        client: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = service {
            query.push(("service", service));
        }
        for scope in scopes {
            query.push(("scope", scope));
        }
        let request = match &self.secret {
            Some(Secret::IdentityToken(refresh)) => {
                // OAuth2 refresh-token grant, form-encoded.
                let mut form = reqwest::Url::parse("http://form.invalid/").map_err(|e| {
                    RegistryError::Auth {
                        registry: self.registry.clone(),
                        repository: scopes.join(" "),
                        detail: e.to_string(),
                    }
                })?;
                form.query_pairs_mut()
                    .append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh)
                    .append_pair("client_id", "houba")
                    .append_pair("service", service.unwrap_or_default())
                    .append_pair("scope", &scopes.join(" "));
                client
                    .post(realm)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form.query().unwrap_or_default().to_owned())
            }
            Some(Secret::Basic { username, password }) => client
                .get(realm)
                .query(&query)
                .basic_auth(username, Some(password)),
            None => client.get(realm).query(&query),
        };
        let failure = |detail: String| RegistryError::Auth {
            registry: self.registry.clone(),
            repository: scopes.join(" "),
            detail,
        };
        let response = request.send().await.map_err(|e| {
            failure(format!(
                "token request to {realm} failed: {}",
                without_url(e)
            ))
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(failure(format!(
                "token server {realm} answered {status}{}",
                if self.secret.is_some() {
                    " for the configured credentials"
                } else {
                    " to an anonymous request"
                }
            )));
        }
        let body = response.bytes().await.map_err(|e| {
            failure(format!(
                "token server {realm} sent an unreadable answer: {}",
                without_url(e)
            ))
        })?;
        let (token, lifetime) = parse_token_response(&body)
            .map_err(|m| failure(format!("token server {realm} {m}")))?;
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(
                scopes.join(" "),
                CachedToken {
                    token: token.clone(),
                    expires: Instant::now() + lifetime,
                },
            );
        }
        Ok(token)
    }
}

/// A reqwest error's text without the URL (which could carry query secrets).
pub(crate) fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn roster_credentials_resolve_and_never_show_in_debug() {
        let env: EnvLookup = Arc::new(|k| (k == "PW").then(|| "s3cret".to_owned()));
        let creds = Credentials::PasswordEnv {
            username: "u".into(),
            env: "PW".into(),
        };
        let secret = resolve("r", &creds, &env, None).unwrap().unwrap();
        assert_eq!(secret.secret_text(), "s3cret");
        assert!(!format!("{secret:?}").contains("s3cret"));

        let missing = Credentials::PasswordEnv {
            username: "u".into(),
            env: "NOPE".into(),
        };
        let err = resolve("r", &missing, &env, None).unwrap_err().to_string();
        assert!(err.contains("NOPE"), "{err}");
    }

    #[test]
    fn docker_config_auths_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:pw");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let env: EnvLookup = Arc::new(|_| None);
        let secret = resolve("127.0.0.1:5000", &Credentials::Ambient, &env, Some(&path)).unwrap();
        assert_eq!(
            secret,
            Some(Secret::Basic {
                username: "alice".into(),
                password: "pw".into()
            })
        );
        let none = resolve("elsewhere:1", &Credentials::Ambient, &env, Some(&path)).unwrap();
        assert_eq!(none, None);
    }
}
