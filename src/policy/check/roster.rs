//! Checks against the rosters of the configuration: destination registries, CA certificates
//! and package mirrors named by transform steps.

use crate::config::CaSource;

use super::{DocumentChecker, spec};
use crate::policy::diagnostic::Code;
use crate::policy::locate::At;
use crate::policy::model::{DestinationSpec, MirrorPolicy, TransformSpec};
use crate::policy::node::Loc;
use crate::policy::resolved::{ArtifactType, Destination, PackageManager, TransformStep};
use crate::policy::rules;
use crate::policy::suggest;

impl DocumentChecker<'_, '_> {
    pub(super) fn resolve_destinations(
        &mut self,
        destinations: &[DestinationSpec],
        at: &At,
    ) -> Vec<Destination> {
        destinations
            .iter()
            .enumerate()
            .filter_map(|(index, destination)| {
                self.resolve_destination(destination, &at.idx(index))
            })
            .collect()
    }

    pub(super) fn resolve_destination(
        &mut self,
        destination: &DestinationSpec,
        item: &At,
    ) -> Option<Destination> {
        let repository = match &destination.project {
            Some(project) => format!("{project}/{}", destination.repository),
            None => destination.repository.clone(),
        };
        let repository_ok = match rules::check_repository(&repository) {
            Ok(()) => true,
            Err(problem) => {
                let project_bad = destination
                    .project
                    .as_deref()
                    .is_some_and(|project| rules::check_repository(project).is_err());
                let field = if project_bad { "project" } else { "repository" };
                let loc = self.at.value(&item.key(field));
                self.report(
                    Code::InvalidRepository,
                    loc,
                    problem,
                    "invalid repository path",
                    "repository paths are lowercase: `mirror/busybox`",
                );
                false
            }
        };
        let registry = self.resolve_registry(destination.registry.as_deref(), item)?;
        repository_ok.then_some(Destination {
            registry,
            repository,
        })
    }

    pub(super) fn resolve_registry(&mut self, name: Option<&str>, item: &At) -> Option<String> {
        let roster = &self.run.settings.registries;
        let names = suggest::list(roster.keys().map(String::as_str));
        match name {
            Some(name) if roster.contains_key(name) => Some(name.to_string()),
            Some(name) => {
                let help = match (suggest::closest(name, roster.keys().map(String::as_str)), roster.is_empty()) {
                    (_, true) => "the registry roster is empty: declare `[registries.<name>]` in houba.toml (or HOUBA_REGISTRIES)".to_string(),
                    (Some(close), _) => format!("did you mean `{close}`? The roster has {names}"),
                    (None, _) => format!("the roster has {names}; add `[registries.{name}]` to houba.toml to declare it"),
                };
                let loc = self.at.value(&item.key("registry"));
                self.report(
                    Code::UnknownRegistry,
                    loc,
                    format!("registry `{name}` is not in the registry roster"),
                    "unknown registry",
                    &help,
                );
                None
            }
            None if roster.len() == 1 => roster.keys().next().cloned(),
            None => {
                let help = if roster.is_empty() {
                    "the registry roster is empty: declare `[registries.<name>]` in houba.toml (or HOUBA_REGISTRIES) and name it here".to_string()
                } else {
                    format!(
                        "the roster has {} registries ({names}): add `registry: <name>`",
                        roster.len()
                    )
                };
                let loc = self.at.value(item);
                self.report(
                    Code::AmbiguousRegistry,
                    loc,
                    "this destination names no registry and the roster does not have exactly one"
                        .into(),
                    "which registry?",
                    &help,
                );
                None
            }
        }
    }

    pub(super) fn resolve_transform(
        &mut self,
        steps: &[TransformSpec],
        at: &At,
    ) -> Vec<TransformStep> {
        if !steps.is_empty() && self.artifact_type != ArtifactType::Image {
            let loc = self.at.key(at);
            let kind = self.artifact_type.as_str();
            self.report(
                Code::TransformOnNonImage,
                loc,
                format!("transform steps on a `{kind}` policy"),
                "images only",
                &format!("transform steps rebuild container images; a {kind} artifact is copied as is. Remove `transform`, or set `artifactType: image`"),
            );
        }
        let mut resolved = Vec::with_capacity(steps.len());
        for (index, step) in steps.iter().enumerate() {
            let step_at = at.idx(index);
            match step {
                TransformSpec::InjectCa(inject) => {
                    let certs_at = step_at.key("injectCA").key("certs");
                    if inject.certs.is_empty() {
                        let loc = self.at.key(&certs_at);
                        self.report(Code::InvalidValue, loc, "`injectCA.certs` is empty".into(), "no certificate", "name at least one `ca_certs` roster entry, e.g. `certs: [corporate-root]`");
                    }
                    for (cert_index, cert) in inject.certs.iter().enumerate() {
                        self.check_ca(cert, &certs_at.idx(cert_index));
                    }
                    resolved.push(TransformStep::InjectCa {
                        certs: inject.certs.clone(),
                    });
                }
                TransformSpec::RewritePackageSources(rewrite) => {
                    let mirrors = &self.run.settings.package_mirrors;
                    if !mirrors.contains_key(&rewrite.mirror) {
                        let help = roster_help(
                            &rewrite.mirror,
                            mirrors.keys().map(String::as_str),
                            "package_mirrors",
                        );
                        let loc = self
                            .at
                            .value(&step_at.key("rewritePackageSources").key("mirror"));
                        self.report(
                            Code::UnknownMirror,
                            loc,
                            format!(
                                "package mirror `{}` is not in the `package_mirrors` roster",
                                rewrite.mirror
                            ),
                            "unknown mirror",
                            &help,
                        );
                    }
                    let managers = rewrite.managers.clone().unwrap_or_default();
                    if let (Some(mirror), Some(_)) =
                        (mirrors.get(&rewrite.mirror), &rewrite.managers)
                    {
                        let managers_at = step_at.key("rewritePackageSources").key("managers");
                        if managers.is_empty() {
                            let loc = self.at.value(&managers_at);
                            self.report(Code::InvalidValue, loc, "`managers` is empty: nothing would be rewritten".into(), "no manager", "list the package managers of the image (`apt`, `apk`, `yum`), or remove `managers` to rewrite every one the mirror has a URL for");
                        }
                        for (index, manager) in managers.iter().enumerate() {
                            let url = match manager {
                                PackageManager::Apt => &mirror.apt,
                                PackageManager::Apk => &mirror.apk,
                                PackageManager::Yum => &mirror.yum,
                            };
                            if url.is_none() {
                                let loc = self.at.value(&managers_at.idx(index));
                                let name = manager.as_str();
                                self.report(Code::UnknownMirror, loc, format!("package mirror `{}` has no `{name}` URL", rewrite.mirror), "no URL for this manager", &format!("set `{name} = \"https://…\"` in `[package_mirrors.{}]` of houba.toml, or drop `{name}` from `managers`", rewrite.mirror));
                            }
                        }
                    }
                    let mut managers = managers;
                    managers.sort();
                    managers.dedup();
                    resolved.push(TransformStep::RewritePackageSources {
                        mirror: rewrite.mirror.clone(),
                        managers,
                    });
                }
                TransformSpec::SetTimezone(timezone) => {
                    if !is_zone_name(&timezone.zone) {
                        let loc = self.at.value(&step_at.key("setTimezone").key("zone"));
                        self.report(Code::InvalidValue, loc, format!("`{}` is not a time zone name", timezone.zone), "not a zone", "write an IANA zone name such as `UTC`, `Europe/Paris` or `America/New_York`");
                    } else if !super::zones::is_known_zone(&timezone.zone) {
                        let loc = self.at.value(&step_at.key("setTimezone").key("zone"));
                        let help = match super::zones::closest_zone(&timezone.zone) {
                            Some(close) => format!("did you mean `{close}`? Zone names are those of the IANA time zone database (`Area/Location`, or `UTC`)"),
                            None => "write a zone of the IANA time zone database, such as `UTC`, `Europe/Paris` or `America/New_York` (the list: `ls /usr/share/zoneinfo`, or the TZ identifiers of the tz database)".to_string(),
                        };
                        self.report(
                            Code::UnknownTimezone,
                            loc,
                            format!(
                                "`{}` is not a zone of the IANA time zone database",
                                timezone.zone
                            ),
                            "unknown zone",
                            &help,
                        );
                    }
                    resolved.push(TransformStep::SetTimezone {
                        zone: timezone.zone.clone(),
                    });
                }
                TransformSpec::Run(run) => {
                    if run.command.trim().is_empty() {
                        let loc = self.at.value(&step_at.key("run").key("command"));
                        self.report(Code::InvalidValue, loc, "`run.command` is empty".into(), "no command", "write the shell command to run in the image, e.g. `command: \"apt-get update && apt-get install -y curl\"`");
                    }
                    resolved.push(TransformStep::Run {
                        command: run.command.clone(),
                    });
                }
            }
        }
        resolved
    }

    pub(super) fn check_ca(&mut self, cert: &str, at: &At) {
        let source = self.run.settings.ca_certs.get(cert).cloned();
        match source {
            None => {
                let help = roster_help(
                    cert,
                    self.run.settings.ca_certs.keys().map(String::as_str),
                    "ca_certs",
                );
                let loc = self.at.value(at);
                self.report(
                    Code::UnknownCa,
                    loc,
                    format!("CA `{cert}` is not in the `ca_certs` roster"),
                    "unknown CA",
                    &help,
                );
            }
            Some(CaSource::Path(path)) => {
                if let Some(problem) = self.run.ca_file_problem(&path) {
                    let loc = self.at.value(at);
                    self.report(
                        Code::UnreadableCa,
                        loc,
                        format!(
                            "CA `{cert}` points at {} which cannot be read: {problem}",
                            path.display()
                        ),
                        "CA file unreadable",
                        &format!(
                            "fix `ca_certs.{cert}.path` in houba.toml, or make the file readable"
                        ),
                    );
                }
            }
            Some(CaSource::Pem(_)) => {}
        }
    }

    pub(super) fn destination_claims(&mut self, policy: &MirrorPolicy) -> Vec<(Destination, Loc)> {
        let defaults = policy.spec.defaults.clone().unwrap_or_default();
        let mut claims: Vec<(Destination, Loc)> = Vec::new();
        let mut sites: Vec<(Vec<DestinationSpec>, At)> = Vec::new();
        if let Some(destinations) = &defaults.destinations {
            sites.push((
                destinations.clone(),
                spec().key("defaults").key("destinations"),
            ));
        }
        for (index, import) in policy.spec.imports.iter().enumerate() {
            if let Some(destinations) = &import.destinations {
                sites.push((
                    destinations.clone(),
                    spec().key("imports").idx(index).key("destinations"),
                ));
            }
        }
        for (destinations, at) in sites {
            for (index, destination) in destinations.iter().enumerate() {
                let item = at.idx(index);
                let resolved =
                    self.quiet(|checker| checker.resolve_destination(destination, &item));
                if let Some(found) = resolved
                    && !claims.iter().any(|(d, _)| *d == found)
                {
                    let loc = self.at.value(&item.key("repository"));
                    claims.push((found, loc));
                }
            }
        }
        claims
    }
}

fn roster_help<'a>(
    name: &str,
    known: impl Iterator<Item = &'a str> + Clone,
    roster: &str,
) -> String {
    let list = suggest::list(known.clone());
    match suggest::closest(name, known) {
        Some(close) => format!("did you mean `{close}`? The `{roster}` roster has {list}"),
        None if list.is_empty() => {
            format!("the `{roster}` roster is empty: declare `[{roster}.{name}]` in houba.toml")
        }
        None => format!(
            "the `{roster}` roster has {list}; declare `[{roster}.{name}]` in houba.toml to add it"
        ),
    }
}

/// IANA zone names are `Area/Location[/Sub]` or a few single words (`UTC`).
fn is_zone_name(zone: &str) -> bool {
    !zone.is_empty()
        && zone.split('/').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        })
}
