//! A small bearer-token server for distribution's `auth: token:` mode.
//!
//! It checks basic credentials, grants every requested scope to the test user, and signs
//! RS256 JWTs with a key made by the `openssl` CLI. The certificate travels in the JWT's
//! `x5c` header and is the registry's `rootcertbundle`, so the registry trusts it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use super::{AbortOnDrop, PASSWORD, USERNAME};

pub const SERVICE: &str = "houba-test-registry";
pub const ISSUER: &str = "houba-test-issuer";

struct Signer {
    key: PathBuf,
    certificate_der_b64: String,
    issued: AtomicU64,
}

/// A running token server; stops on drop.
pub struct TokenServer {
    realm: String,
    certificate: PathBuf,
    signer: Arc<Signer>,
    _task: AbortOnDrop,
}

impl TokenServer {
    /// Generate a key and certificate in `dir` and serve tokens on 127.0.0.1.
    pub async fn start(dir: &Path) -> TokenServer {
        let key = dir.join("token.key");
        let certificate = dir.join("token.crt");
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=houba-test-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&certificate)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl req failed");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&certificate)
            .output()
            .expect("openssl runs");
        assert!(der.status.success(), "openssl x509 failed");
        let signer = Arc::new(Signer {
            key,
            certificate_der_b64: STANDARD.encode(der.stdout),
            issued: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/token", axum::routing::get(issue))
            .with_state(signer.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let realm = format!("http://{}/token", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenServer {
            realm,
            certificate,
            signer,
            _task: AbortOnDrop(task),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn certificate(&self) -> &Path {
        &self.certificate
    }

    /// Tokens issued so far (to check caching).
    pub fn issued(&self) -> u64 {
        self.signer.issued.load(Ordering::Relaxed)
    }
}

fn authorised(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    STANDARD.decode(encoded).ok().as_deref() == Some(format!("{USERNAME}:{PASSWORD}").as_bytes())
}

async fn issue(
    State(signer): State<Arc<Signer>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if !authorised(&headers) {
        return (StatusCode::UNAUTHORIZED, "invalid credentials").into_response();
    }
    let url =
        reqwest::Url::parse(&format!("http://x/?{}", query.unwrap_or_default())).expect("query");
    let access: Vec<_> = url
        .query_pairs()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?.to_owned(), parts.next()?.to_owned(), parts.next()?.to_owned());
            Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let serial = signer.issued.fetch_add(1, Ordering::Relaxed);
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [signer.certificate_der_b64]});
    let claims = json!({
        "iss": ISSUER, "sub": USERNAME, "aud": SERVICE,
        "exp": now + 600, "nbf": now - 30, "iat": now, "jti": format!("houba-test-{serial}"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = signer.key.clone();
    let input = signing_input.clone();
    let signature = tokio::task::spawn_blocking(move || sign(&key, input.as_bytes()))
        .await
        .expect("sign task");
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    axum::Json(json!({"token": token, "access_token": token, "expires_in": 600})).into_response()
}

/// RSASSA-PKCS1-v1_5 over SHA-256, by the openssl CLI.
fn sign(key: &Path, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    let output = child.wait_with_output().expect("openssl dgst");
    assert!(output.status.success(), "openssl dgst failed");
    output.stdout
}
