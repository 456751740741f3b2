//! The library's typed errors as miette reports: a stable code and how to fix it. The library
//! returns `thiserror` types that say what failed; only the CLI decides how a failure reads.
//!
//! Each cause is printed once. A houba error either carries its cause in its own message, or
//! exposes it as `source()` for the report's `╰─▶` chain, never both (the Rust API
//! guidelines' rule): miette's chain and the run report's one-line text
//! (`operations::error_text`) then repeat nothing.

use std::fmt;

use miette::Diagnostic;

use crate::observe::ObserveError;
use crate::pipeline::PlanError;
use crate::registry::RegistryError;

/// How to fix a failed registry read, by what the registry said.
fn observe_help(e: &ObserveError) -> &'static str {
    match e.source.as_ref() {
        RegistryError::Io { .. } => {
            "check that the OCI layout directory of the roster exists, is a directory and is readable"
        }
        RegistryError::Auth { .. } => {
            "check the credentials the roster gives for this registry (password_env, password_file or docker's config.json)"
        }
        _ => "check that the registry is reachable and the credentials in the roster are right",
    }
}

impl Diagnostic for PlanError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let code = match self {
            PlanError::Observe(_) => "houba::observe",
            PlanError::Collision(_) => "houba::plan::collision",
            PlanError::UnknownTarget { .. } => "houba::plan::unknown_target",
            PlanError::NoBuilder { .. } => "houba::plan::no_builder",
            PlanError::RunPlatforms { .. }
            | PlanError::Recipe(_)
            | PlanError::RecipeDigest { .. } => "houba::plan::recipe",
            PlanError::Registry(_) => "houba::registry",
            PlanError::Evidence(_) | PlanError::UpstreamReferrers { .. } => "houba::evidence",
        };
        Some(Box::new(code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let help: String = match self {
            PlanError::Observe(e) => observe_help(e).into(),
            PlanError::Collision(_) => {
                "give the imports or variants distinct destinations or suffixes".into()
            }
            PlanError::UnknownTarget {
                closest: Some(c), ..
            } => format!("did you mean `{c}`? `houba graph` lists every address"),
            PlanError::UnknownTarget { closest: None, .. } => {
                "`houba graph` lists every address".into()
            }
            PlanError::NoBuilder { .. } => "install buildah (apt-get install buildah) or set BUILDKIT_HOST to a BuildKit daemon (with `buildctl` on PATH), then plan again".into(),
            PlanError::RunPlatforms { .. } => {
                "list at most one platform, or split the platforms into variants".into()
            }
            PlanError::Registry(_) | PlanError::UpstreamReferrers { .. } => {
                "check that the registry is reachable and the credentials in the roster are right"
                    .into()
            }
            PlanError::Evidence(_) => "check that the destination registry is reachable and that the roster credentials may list its referrers".into(),
            PlanError::Recipe(_) | PlanError::RecipeDigest { .. } => return None,
        };
        Some(Box::new(help))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error and its causes on one line, as a chain printer shows them.
    fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// No link of a chain says its cause again: the cause is printed once.
    fn assert_printed_once(e: &(dyn std::error::Error + 'static)) {
        let mut link: &(dyn std::error::Error + 'static) = e;
        while let Some(cause) = link.source() {
            assert!(
                !link.to_string().contains(&cause.to_string()),
                "`{link}` repeats its cause `{cause}`"
            );
            link = cause;
        }
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotADirectory, "Not a directory")
    }

    #[test]
    fn every_error_that_carries_a_cause_prints_it_once() {
        let registry_io = RegistryError::Io {
            registry: "/srv/layout".into(),
            message: "cannot read /srv/layout/index.json".into(),
            error: io(),
        };
        let observe = ObserveError::new("the tags of local/mirror/busybox", registry_io);
        let plan = PlanError::from(observe);
        assert_printed_once(&plan);
        let text = crate::cli::operations::error_text(&miette::Report::new(plan));
        assert_eq!(text.matches("Not a directory").count(), 1, "{text}");
        assert!(
            text.starts_with("cannot read the tags of local/mirror/busybox: /srv/layout: "),
            "the run report names the cause: {text}"
        );

        let errors: Vec<Box<dyn std::error::Error + 'static>> = vec![
            Box::new(crate::report::lock::LockError::Io {
                path: "/var/cache/houba/.houba-apply.lock".into(),
                error: io(),
            }),
            Box::new(crate::inventory::InventoryError::Read {
                what: "the catalog of r".into(),
                error: Box::new(RegistryError::Transport {
                    registry: "r".into(),
                    message: "connection refused".into(),
                }),
            }),
            Box::new(crate::build::BuildError::Io {
                image: "busybox".into(),
                context: "writing the layer".into(),
                error: io(),
            }),
            Box::new(crate::stamp::StampError::from(
                serde_json::from_str::<serde_json::Value>("{").unwrap_err(),
            )),
        ];
        for e in &errors {
            assert_printed_once(e.as_ref());
            let text = chain_text(e.as_ref());
            let cause = text.rsplit(": ").next().unwrap_or_default().to_string();
            assert_eq!(text.matches(&cause).count(), 1, "{text}");
        }
    }

    #[test]
    fn plan_errors_have_a_code_and_say_how_to_fix_them() {
        let target: crate::address::Address = "busybx".parse().unwrap();
        let closest: crate::address::Address = "busybox".parse().unwrap();
        let e = PlanError::UnknownTarget {
            target: Box::new(target),
            closest: Some(Box::new(closest)),
        };
        let rendered = format!("{:?}", miette::Report::new(e));
        assert!(
            rendered.contains("houba::plan::unknown_target"),
            "{rendered}"
        );
        assert!(rendered.contains("did you mean `busybox`?"), "{rendered}");
    }
}
