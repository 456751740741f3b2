//! The Dockerfile backend, for recipes with steps that run commands: the recipe becomes a
//! Dockerfile built `FROM` the base digest by an external builder (`buildctl` against a
//! BuildKit daemon, or daemonless `buildah`), which pushes the result to the destination under
//! a temporary reference. The caller then stamps that manifest and tags it.
//!
//! Native steps are expressed as instructions: `setTimezone` as `ENV TZ` plus a `RUN` that
//! links the zone, `injectCA` as a `COPY` of the PEMs plus a `RUN` that appends them to the
//! bundle of whichever family the image belongs to. `rewritePackageSources` is refused in such
//! a recipe (its native rewrite parses each source format; a `sed` would be a weaker copy).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::TransformRosters;
use super::error::BuildError;
use super::transform::{ResolvedStep, anchor_file_name, resolve_steps};
use crate::config::Builder;
use crate::policy::resolved::TransformStep;

/// Version of the rendering below. Part of the recipe digest of images built from a
/// Dockerfile: bump it whenever the Dockerfile rendered for the same steps changes.
pub const RENDER_VERSION: &str = "houba-dockerfile/1";

/// Where the certificates are copied in the build context and, first, in the image.
const CA_STAGING: &str = "/tmp/houba-ca";

/// A rendered build context: the Dockerfile and the files it copies (relative path, bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildContext {
    /// The Dockerfile.
    pub dockerfile: String,
    /// Files the Dockerfile copies (CA certificates): relative path and bytes.
    pub files: Vec<(String, Vec<u8>)>,
}

impl BuildContext {
    /// Writes the Dockerfile and the files under `dir`.
    pub fn write_to(&self, image: &str, dir: &Path) -> Result<(), BuildError> {
        let io = |context: String| {
            move |source| BuildError::Io {
                image: image.to_string(),
                context,
                error: source,
            }
        };
        std::fs::write(dir.join("Dockerfile"), &self.dockerfile)
            .map_err(io("writing the Dockerfile".to_string()))?;
        for (path, bytes) in &self.files {
            let target = dir.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io(format!("creating {}", parent.display())))?;
            }
            std::fs::write(&target, bytes).map_err(io(format!("writing {path}")))?;
        }
        Ok(())
    }
}

/// Whether the Dockerfile backend can build `steps`; `rewritePackageSources` cannot be mixed
/// with `run`.
pub fn check_steps(image: &str, steps: &[TransformStep]) -> Result<(), BuildError> {
    if steps
        .iter()
        .any(|s| matches!(s, TransformStep::RewritePackageSources { .. }))
    {
        return Err(BuildError::Step {
            image: image.to_string(),
            step: "rewritePackageSources",
            detail: "cannot be combined with `run` steps (they are built from a Dockerfile); \
                     rewrite the sources in a `run` command instead, or move `run` to another \
                     variant"
                .to_string(),
        });
    }
    Ok(())
}

/// Renders the build context of `steps` on top of `base` (`host/repository@sha256:…`). The
/// text is a pure function of its inputs.
pub fn render(
    image: &str,
    base: &str,
    steps: &[TransformStep],
    rosters: &TransformRosters,
) -> Result<BuildContext, BuildError> {
    check_steps(image, steps)?;
    let resolved = resolve_steps(image, steps, rosters)?;
    let mut text = String::from("# Rendered by houba from the policy's transform steps.\n");
    let _ = writeln!(text, "FROM {base}");
    let mut files = Vec::new();
    for (index, step) in resolved.iter().enumerate() {
        match step {
            ResolvedStep::SetTimezone(zone) => {
                // Zone names are validated: letters, digits, `/`, `_`, `-`, `+`.
                let _ = writeln!(text, "ENV TZ={zone}");
                let _ = writeln!(
                    text,
                    "RUN ln -sf /usr/share/zoneinfo/{zone} /etc/localtime && echo {zone} > /etc/timezone"
                );
            }
            ResolvedStep::InjectCa(certs) => {
                let dir = format!("ca-{index}");
                let mut names = Vec::new();
                for cert in certs {
                    let name = anchor_file_name(&cert.name, "pem");
                    files.push((format!("{dir}/{name}"), cert.pem.clone().into_bytes()));
                    names.push(name.trim_end_matches(".pem").to_string());
                }
                let _ = writeln!(text, "COPY {dir}/ {CA_STAGING}/");
                let _ = writeln!(text, "RUN {}", ca_script(&names));
            }
            ResolvedStep::Run(command) => {
                if command.contains('\n') {
                    // The exec form keeps a multi-line command one instruction.
                    let argv = serde_json::json!(["/bin/sh", "-c", command]);
                    let _ = writeln!(text, "RUN {argv}");
                } else {
                    let _ = writeln!(text, "RUN {command}");
                }
            }
            ResolvedStep::RewritePackageSources { .. } => {
                // Refused by `check_steps` above; kept explicit so a new step is not skipped.
                return Err(BuildError::Step {
                    image: image.to_string(),
                    step: "rewritePackageSources",
                    detail: "not supported in a Dockerfile build".to_string(),
                });
            }
        }
    }
    Ok(BuildContext {
        dockerfile: text,
        files,
    })
}

/// Appends the staged PEMs to the bundle of the image's family and keeps each in the family's
/// anchor directory (as the native `injectCA` does); fails when no known bundle exists.
fn ca_script(names: &[String]) -> String {
    let copy = |dir: &str, ext: &str| {
        names
            .iter()
            .map(|n| format!("cp {CA_STAGING}/{n}.pem {dir}/{n}.{ext}"))
            .collect::<Vec<_>>()
            .join(" && ")
    };
    let pems = names
        .iter()
        .map(|n| format!("{CA_STAGING}/{n}.pem"))
        .collect::<Vec<_>>()
        .join(" ");
    let debian = "/etc/ssl/certs/ca-certificates.crt";
    let redhat = "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem";
    format!(
        "if [ -f {debian} ]; then mkdir -p /usr/local/share/ca-certificates && {} && cat {pems} >> {debian}; \
         elif [ -f {redhat} ]; then mkdir -p /etc/pki/ca-trust/source/anchors && {} && cat {pems} >> {redhat}; \
         else echo 'injectCA: no known CA bundle in this image' >&2; exit 1; fi && rm -rf {CA_STAGING}",
        copy("/usr/local/share/ca-certificates", "crt"),
        copy("/etc/pki/ca-trust/source/anchors", "pem"),
    )
}

/// One Dockerfile build and push.
pub struct DockerfileBuild<'a> {
    /// For messages.
    pub image: &'a str,
    /// The rendered context.
    pub context: &'a BuildContext,
    /// The builder to run.
    pub builder: &'a Builder,
    /// Verify TLS when pulling the base.
    pub base_tls_verify: bool,
    /// `host/repository:tag` the builder pushes to (a temporary tag, never the final one).
    pub push_to: &'a str,
    /// Verify TLS when pushing.
    pub push_tls_verify: bool,
    /// `os/arch[/variant]` to build for; `None` builds for the builder's platform.
    pub platform: Option<&'a str>,
    /// Scratch space (context, builder storage); removed by the caller.
    pub workdir: &'a Path,
}

/// Builds and pushes; returns the digest of the pushed manifest.
pub fn build_and_push(build: &DockerfileBuild<'_>) -> Result<String, BuildError> {
    let context_dir = build.workdir.join("context");
    std::fs::create_dir_all(&context_dir).map_err(|source| BuildError::Io {
        image: build.image.to_string(),
        context: "creating the build context".to_string(),
        error: source,
    })?;
    build.context.write_to(build.image, &context_dir)?;
    let digest = match build.builder {
        Builder::Buildah { program } => buildah(build, program, &context_dir)?,
        Builder::Buildkit { buildctl, host } => buildkit(build, buildctl, host, &context_dir)?,
    };
    if !is_digest(&digest) {
        return Err(BuildError::Builder {
            image: build.image.to_string(),
            tool: "build",
            detail: format!("the builder reported `{digest}`, which is not a sha256 digest"),
        });
    }
    Ok(digest)
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn buildah(
    build: &DockerfileBuild<'_>,
    program: &Path,
    context_dir: &Path,
) -> Result<String, BuildError> {
    // A private store: nothing is left in the user's storage, and runs do not share state.
    let root = build.workdir.join("storage");
    let runroot = build.workdir.join("run");
    let local_name = "localhost/houba-build:latest";
    let store = |cmd: &mut Command| {
        cmd.arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .arg("--storage-driver")
            .arg("vfs");
    };
    let mut bud = Command::new(program);
    store(&mut bud);
    bud.arg("bud")
        .arg("--isolation")
        .arg("chroot")
        .arg(format!("--tls-verify={}", build.base_tls_verify))
        .arg("--format")
        .arg("oci")
        .arg("-f")
        .arg(context_dir.join("Dockerfile"))
        .arg("-t")
        .arg(local_name);
    if let Some(platform) = build.platform {
        bud.arg("--platform").arg(platform);
    }
    bud.arg(context_dir);
    run(build.image, "buildah bud", &mut bud)?;

    let digest_file = build.workdir.join("pushed-digest");
    let mut push = Command::new(program);
    store(&mut push);
    push.arg("push")
        .arg(format!("--tls-verify={}", build.push_tls_verify))
        .arg("--format")
        .arg("oci")
        .arg("--digestfile")
        .arg(&digest_file)
        .arg(local_name)
        .arg(format!("docker://{}", build.push_to));
    run(build.image, "buildah push", &mut push)?;
    read_trimmed(build.image, &digest_file)
}

fn buildkit(
    build: &DockerfileBuild<'_>,
    buildctl: &Path,
    host: &str,
    context_dir: &Path,
) -> Result<String, BuildError> {
    let metadata = build.workdir.join("metadata.json");
    let mut output = format!("type=image,name={},push=true", build.push_to);
    if !build.push_tls_verify {
        output.push_str(",registry.insecure=true");
    }
    let mut cmd = Command::new(buildctl);
    cmd.arg("--addr")
        .arg(host)
        .arg("build")
        .arg("--frontend")
        .arg("dockerfile.v0")
        .arg("--local")
        .arg(format!("context={}", context_dir.display()))
        .arg("--local")
        .arg(format!("dockerfile={}", context_dir.display()))
        .arg("--output")
        .arg(output)
        .arg("--metadata-file")
        .arg(&metadata);
    if let Some(platform) = build.platform {
        cmd.arg("--opt").arg(format!("platform={platform}"));
    }
    run(build.image, "buildctl build", &mut cmd)?;
    let text = read_trimmed(build.image, &metadata)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| BuildError::Builder {
            image: build.image.to_string(),
            tool: "buildctl build",
            detail: format!("the metadata file is not JSON: {e}"),
        })?;
    value
        .get("containerimage.digest")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| BuildError::Builder {
            image: build.image.to_string(),
            tool: "buildctl build",
            detail: "the metadata file has no `containerimage.digest`".to_string(),
        })
}

/// Runs a builder command; on failure the error carries the end of its output.
fn run(image: &str, tool: &'static str, cmd: &mut Command) -> Result<(), BuildError> {
    tracing::debug!(image, tool, command = ?cmd, "running the image builder");
    let output = cmd.output().map_err(|e| BuildError::Builder {
        image: image.to_string(),
        tool,
        detail: format!(
            "cannot start {}: {e}; install it or fix PATH",
            cmd.get_program().to_string_lossy()
        ),
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().chain(stderr.lines()).collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    Err(BuildError::Builder {
        image: image.to_string(),
        tool,
        detail: format!(
            "failed ({}); last output:\n{tail}\ncheck the `run` commands and that the base and destination registries are reachable",
            output.status
        ),
    })
}

fn read_trimmed(image: &str, path: &PathBuf) -> Result<String, BuildError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| BuildError::Io {
            image: image.to_string(),
            context: format!("reading {}", path.display()),
            error: source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_command_stays_one_instruction() {
        let steps = [TransformStep::Run {
            command: "set -e\necho \"a\" > /a".into(),
        }];
        let ctx = render("img", "r/x@sha256:00", &steps, &TransformRosters::default()).unwrap();
        assert!(
            ctx.dockerfile
                .contains(r#"RUN ["/bin/sh","-c","set -e\necho \"a\" > /a"]"#),
            "{}",
            ctx.dockerfile
        );
    }

    #[test]
    fn package_source_rewrites_are_refused_next_to_run() {
        let steps = [
            TransformStep::RewritePackageSources {
                mirror: "internal".into(),
                managers: vec![],
            },
            TransformStep::Run {
                command: "true".into(),
            },
        ];
        let err = render("img", "r/x@sha256:00", &steps, &TransformRosters::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be combined with `run`"), "{err}");
    }

    #[test]
    fn the_recipe_digest_covers_the_command() {
        let digest = |command: &str| {
            let steps = [TransformStep::Run {
                command: command.into(),
            }];
            crate::build::recipe_digest(&steps, &[], &TransformRosters::default(), "sha256:00")
                .unwrap()
        };
        assert_eq!(digest("echo a"), digest("echo a"));
        assert_ne!(digest("echo a"), digest("echo b"));
    }

    #[test]
    fn only_sha256_digests_are_accepted_from_builders() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest("latest"));
    }
}
