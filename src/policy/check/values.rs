//! Per-import values outside tags and destinations: platforms, owners, variants (their
//! names and suffixes), and the settle delay.

use std::collections::BTreeMap;
use std::time::Duration;

use super::DocumentChecker;
use crate::policy::diagnostic::Code;
use crate::policy::locate::At;
use crate::policy::model::Import;
use crate::policy::resolved::Variant;
use crate::policy::rules;

impl DocumentChecker<'_, '_> {
    pub(super) fn check_platforms(
        &mut self,
        platforms: &[String],
        at: &At,
    ) -> Vec<crate::policy::resolved::Platform> {
        let mut parsed = Vec::new();
        for (index, text) in platforms.iter().enumerate() {
            match rules::parse_platform(text) {
                Ok(platform) => parsed.push(platform),
                Err(problem) => {
                    let loc = self.at.value(&at.idx(index));
                    self.report(Code::InvalidPlatform, loc, problem, "invalid platform", "write `os/arch[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`");
                }
            }
        }
        parsed
    }

    pub(super) fn check_owners(&mut self, owners: &[String], at: &At) {
        for (index, owner) in owners.iter().enumerate() {
            if let Err(problem) = rules::check_owner(owner) {
                let loc = self.at.value(&at.idx(index));
                self.report(Code::InvalidOwner, loc, problem, "not an entity ref", "owners are Backstage entity refs; `io.houba.owners` carries them so incidents reach the right team");
            }
        }
    }

    pub(super) fn resolve_variants(&mut self, import: &Import, at: &At) -> Vec<Variant> {
        let Some(variants) = &import.variants else {
            return vec![Variant {
                name: "default".into(),
                suffix: String::new(),
                transform: Vec::new(),
            }];
        };
        let variants_at = at.key("variants");
        if variants.is_empty() {
            let loc = self.at.key(&variants_at);
            self.report(
                Code::InvalidValue,
                loc,
                "`variants` is empty: nothing would be placed".into(),
                "no variant",
                "remove `variants` to get one `default` variant, or list at least one",
            );
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut suffixes: BTreeMap<&str, &str> = BTreeMap::new();
        let mut resolved = Vec::with_capacity(variants.len());
        for (index, variant) in variants.iter().enumerate() {
            let item = variants_at.idx(index);
            self.check_name(&variant.name, &item.key("name"), "variant");
            if let Some(first) = names.get(variant.name.as_str()) {
                let first_line = self.at.value(&variants_at.idx(*first).key("name")).line;
                let loc = self.at.value(&item.key("name"));
                self.report(
                    Code::DuplicateVariant,
                    loc,
                    format!(
                        "variant name `{}` is used twice in import `{}`",
                        variant.name, import.name
                    ),
                    "second variant with this name",
                    &format!("rename this variant or the one on line {first_line}"),
                );
            } else {
                names.insert(&variant.name, index);
            }
            if let Err(problem) = rules::check_suffix(&variant.suffix) {
                let loc = self.at.value(&item.key("suffix"));
                self.report(
                    Code::InvalidSuffix,
                    loc,
                    problem,
                    "invalid suffix",
                    "a suffix is letters, digits, `.`, `_` and `-`, e.g. `-eu`",
                );
            } else if let Some(other) = suffixes.get(variant.suffix.as_str()) {
                let loc = self.at.value(&item.key("suffix"));
                self.report(
                    Code::VariantTagCollision,
                    loc,
                    if variant.suffix.is_empty() {
                        format!("variants `{other}` and `{}` both have the empty suffix: both would write the same tags", variant.name)
                    } else {
                        format!("variants `{other}` and `{}` have the same suffix `{}`: both would write the same tags", variant.name, variant.suffix)
                    },
                    "same tags as another variant",
                    "give each variant of an import a distinct `suffix` (e.g. `-eu`, `-us`); at most one may have the empty suffix",
                );
            } else {
                suffixes.insert(&variant.suffix, &variant.name);
            }
            let transform = match &variant.transform {
                Some(steps) => self.resolve_transform(steps, &item.key("transform")),
                None => Vec::new(),
            };
            resolved.push(Variant {
                name: variant.name.clone(),
                suffix: variant.suffix.clone(),
                transform,
            });
        }
        resolved
    }

    pub(super) fn resolve_settle(&mut self, import: &Import, at: &At) -> Duration {
        let Some(text) = &import.settle else {
            return Duration::ZERO;
        };
        rules::parse_settle(text).unwrap_or_else(|problem| {
            let loc = self.at.value(&at.key("settle"));
            self.report(Code::InvalidSettle, loc, problem, "invalid duration", "e.g. `settle: 24h` waits a day after an upstream digest last moved before updating");
            Duration::ZERO
        })
    }
}
