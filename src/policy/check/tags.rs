//! Tag rules: regexes, semver ranges, pins, and alias templates (their placeholders and
//! where they are written).

use std::collections::BTreeMap;

use super::{DocumentChecker, spec};
use crate::policy::diagnostic::Code;
use crate::policy::locate::At;
use crate::policy::merge::MergedImport;
use crate::policy::model::{Import, PolicySpec, TagSpec};
use crate::policy::node::Loc;
use crate::policy::resolved::{Destination, ResolvedImport, TagRules};
use crate::policy::rules;
use crate::policy::suggest;

impl DocumentChecker<'_, '_> {
    pub(super) fn resolve_tag_rules(
        &mut self,
        merged: &MergedImport,
        import: &Import,
        at: &At,
    ) -> TagRules {
        let tags = &merged.tags;
        let own_tags = import.tags.as_ref();
        let tags_at = |own: bool| {
            if own {
                at.key("tags")
            } else {
                spec().key("defaults").key("tags")
            }
        };
        // Placeholders an alias may use: the semver parts and the named groups of the
        // effective includeRegex (which may be inherited).
        let mut placeholders = vec![
            "major".to_string(),
            "minor".to_string(),
            "patch".to_string(),
        ];
        if let Some(include) = &tags.include_regex
            && let Ok(groups) = self.run.compile_regex(include)
        {
            placeholders.extend(groups.iter().cloned());
        }
        let aliases_at = tags_at(own_tags.is_some_and(|t| t.aliases.is_some())).key("aliases");
        let aliases = tags.aliases.clone().unwrap_or_default();
        for (index, alias) in aliases.iter().enumerate() {
            let problem = match rules::alias_placeholders(alias) {
                Err(problem) => Some(problem),
                Ok(used) => used.iter().find(|name| !placeholders.iter().any(|p| p == *name)).map(|unknown| {
                    format!("alias `{alias}` uses `{{{unknown}}}`, which is neither a semver part nor a named group of `includeRegex`")
                }),
            };
            if let Some(problem) = problem {
                let loc = self.at.value(&aliases_at.idx(index));
                let known = suggest::list(placeholders.iter().map(String::as_str));
                self.report(Code::InvalidAlias, loc, problem, "invalid alias", &format!("placeholders available here: {known}; name a group in includeRegex with `(?P<name>…)` to use it"));
            }
        }
        let rules = TagRules {
            include_regex: tags.include_regex.clone(),
            exclude_regex: tags.exclude_regex.clone().unwrap_or_default(),
            semver_only: tags.semver_only.unwrap_or(true),
            semver: tags
                .semver
                .as_deref()
                .and_then(|range| rules::normalise_semver_range(range).ok()),
            prerelease: tags.prerelease.unwrap_or(false),
            latest: tags.latest.map(|n| n as usize),
            names: tags.names.clone().unwrap_or_default(),
            aliases,
            pins: tags.pins.clone().unwrap_or_default(),
        };
        self.check_refinements_without_selector(&rules, own_tags, at);
        rules
    }

    /// `names` given alone select exactly those names, so a refinement written next to them
    /// in the import would do nothing: refuse it rather than ignore it. (Refinements inherited
    /// from `defaults` are meant for the imports that select by filter, and stay silent.)
    fn check_refinements_without_selector(
        &mut self,
        rules: &TagRules,
        own: Option<&TagSpec>,
        at: &At,
    ) {
        let Some(own) = own else { return };
        if !rules.names_alone() {
            return;
        }
        let mut written = Vec::new();
        if own.exclude_regex.as_ref().is_some_and(|e| !e.is_empty()) {
            written.push("excludeRegex");
        }
        if own.prerelease == Some(true) {
            written.push("prerelease");
        }
        if own.semver_only == Some(true) {
            written.push("semverOnly");
        }
        for field in written {
            let loc = self.at.key(&at.key("tags").key(field));
            self.report(
                Code::InvalidValue,
                loc,
                format!("`{field}` has no effect here: `names` given without `includeRegex`, `semver` or `latest` select exactly those names"),
                "no effect",
                &format!("remove `{field}`, or add `includeRegex`, `semver` or `latest` to select tags by filter as well as by name"),
            );
        }
    }

    /// An alias is written once per repository: two imports (or two variants) of this policy
    /// writing the same literal alias into the same destination would fight over it.
    pub(super) fn check_alias_collisions(
        &mut self,
        imports: &[ResolvedImport],
        spec_doc: &PolicySpec,
    ) {
        let mut written: BTreeMap<(Destination, String), (String, Loc)> = BTreeMap::new();
        for (index, import) in imports.iter().enumerate() {
            let own_aliases = spec_doc.imports[index]
                .tags
                .as_ref()
                .is_some_and(|t| t.aliases.is_some());
            let aliases_at = if own_aliases {
                spec().key("imports").idx(index).key("tags").key("aliases")
            } else {
                spec().key("defaults").key("tags").key("aliases")
            };
            for (alias_index, alias) in import.tags.aliases.iter().enumerate() {
                if !rules::alias_placeholders(alias).is_ok_and(|p| p.is_empty()) {
                    continue;
                }
                let loc = self.at.value(&aliases_at.idx(alias_index));
                for variant in &import.variants {
                    let tag = format!("{alias}{}", variant.suffix);
                    for destination in &import.destinations {
                        let key = (destination.clone(), tag.clone());
                        let writer = format!("{}/{}", import.name, variant.name);
                        match written.get(&key) {
                            Some((first, first_loc)) => {
                                let first_line = first_loc.line;
                                self.report(
                                    Code::DuplicateAlias,
                                    loc,
                                    format!("alias `{tag}` is written into {}/{} by both `{first}` and `{writer}`", destination.registry, destination.repository),
                                    "alias written twice",
                                    &format!("an alias names one image per repository; drop it here or on line {first_line}, or send one import to another repository"),
                                );
                            }
                            None => {
                                written.insert(key, (writer, loc));
                            }
                        }
                    }
                }
            }
        }
    }

    pub(super) fn check_tags(&mut self, tags: &TagSpec, at: &At) {
        if let Some(recheck) = &tags.recheck
            && let Err(problem) = rules::parse_recheck(recheck)
        {
            let loc = self.at.value(&at.key("recheck"));
            self.report(
                Code::InvalidRecheck,
                loc,
                problem,
                "invalid recheck",
                "`recheck: never` for release tags that do not move (`1.2.3`), `recheck: 24h` to look upstream at most once a day, `recheck: always` (the default) for moving tags such as `latest`",
            );
        }
        if let Some(include) = &tags.include_regex {
            self.check_regex(include, &at.key("includeRegex"));
        }
        for (index, exclude) in tags.exclude_regex.iter().flatten().enumerate() {
            self.check_regex(exclude, &at.key("excludeRegex").idx(index));
        }
        if let Some(range) = &tags.semver
            && let Err(problem) = rules::normalise_semver_range(range)
        {
            let loc = self.at.value(&at.key("semver"));
            self.report(
                Code::InvalidSemverRange,
                loc,
                problem,
                "invalid range",
                "write comparators separated by commas, e.g. `>=1.36, <2`, `~1.37`, `^3`",
            );
        }
        for (index, name) in tags.names.iter().flatten().enumerate() {
            if !rules::is_tag(name) {
                let loc = self.at.value(&at.key("names").idx(index));
                self.report(Code::InvalidValue, loc, format!("`{name}` is not a valid tag"), "not a tag", "a tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`");
            }
        }
        for (tag, digest) in tags.pins.iter().flatten() {
            let pin_at = at.key("pins").key(tag);
            if !rules::is_tag(tag) {
                let loc = self.at.key(&pin_at);
                self.report(
                    Code::InvalidValue,
                    loc,
                    format!("pinned tag `{tag}` is not a valid tag"),
                    "not a tag",
                    "pins map a tag to its digest: `\"1.37.0\": sha256:…`",
                );
            }
            if let Err(problem) = rules::check_digest(digest) {
                let loc = self.at.value(&pin_at);
                self.report(Code::InvalidDigest, loc, problem, "malformed digest", "write `sha256:` followed by the 64 lowercase hex digits, e.g. from `skopeo inspect --format '{{.Digest}}' docker://…`");
            }
        }
    }

    pub(super) fn check_regex(&mut self, source: &str, at: &At) {
        if let Err(problem) = self.run.compile_regex(source) {
            let loc = self.at.value(at);
            let last_line = problem.clone();
            self.report(
                Code::InvalidRegex,
                loc,
                format!("`{source}` is not a valid regular expression: {last_line}"),
                "does not compile",
                "houba uses Rust `regex` syntax (no look-around or back-references); in YAML, single-quote patterns so that `\\` stays literal: '^1\\.37\\.\\d+$'",
            );
        }
    }
}
