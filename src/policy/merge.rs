//! The defaults merge: what an import inherits from `spec.defaults`.
//!
//! Maps (`tags`, `archive`) are merged field by field: every field the import sets wins, the
//! others come from the defaults. Lists (`destinations`, `transform`, `platforms`, `owners`,
//! and lists inside maps such as `tags.excludeRegex`) and scalars (`vendor`) are replaced
//! wholesale: an import that sets `owners` does not add to the default owners.

use super::model::{ArchiveSpec, DestinationSpec, Import, ImportDefaults, TagSpec, TransformSpec};

/// An import with its defaults merged in; still unvalidated policy spellings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MergedImport {
    /// Tag rules, merged field by field with `defaults.tags`.
    pub tags: TagSpec,
    /// The import's platforms, else the defaults'; empty: every platform upstream has.
    pub platforms: Vec<String>,
    /// The import's destinations, else the defaults'; empty is reported as a problem.
    pub destinations: Vec<DestinationSpec>,
    /// The import's transform steps, else the defaults'.
    pub transform: Vec<TransformSpec>,
    /// The import's owners, else the defaults'.
    pub owners: Vec<String>,
    /// The import's vendor, else the defaults'.
    pub vendor: Option<String>,
    /// Retention, merged field by field with `defaults.archive`.
    pub archive: Option<ArchiveSpec>,
}

/// Merges `defaults` into `import`: maps field by field, lists and scalars wholesale.
pub fn merge_import(defaults: &ImportDefaults, import: &Import) -> MergedImport {
    MergedImport {
        tags: merge_tags(defaults.tags.as_ref(), import.tags.as_ref()),
        platforms: pick(&import.platforms, &defaults.platforms),
        destinations: pick(&import.destinations, &defaults.destinations),
        transform: pick(&import.transform, &defaults.transform),
        owners: pick(&import.owners, &defaults.owners),
        vendor: import.vendor.clone().or_else(|| defaults.vendor.clone()),
        archive: merge_archive(defaults.archive.as_ref(), import.archive.as_ref()),
    }
}

fn pick<T: Clone>(own: &Option<Vec<T>>, inherited: &Option<Vec<T>>) -> Vec<T> {
    own.as_ref()
        .or(inherited.as_ref())
        .cloned()
        .unwrap_or_default()
}

/// Merges tag rules field by field: each field `own` sets wins, the others come from
/// `defaults`. Either side may be absent.
pub fn merge_tags(defaults: Option<&TagSpec>, own: Option<&TagSpec>) -> TagSpec {
    let empty = TagSpec::default();
    let base = defaults.unwrap_or(&empty);
    let own = own.unwrap_or(&empty);
    TagSpec {
        include_regex: own
            .include_regex
            .clone()
            .or_else(|| base.include_regex.clone()),
        exclude_regex: own
            .exclude_regex
            .clone()
            .or_else(|| base.exclude_regex.clone()),
        semver_only: own.semver_only.or(base.semver_only),
        semver: own.semver.clone().or_else(|| base.semver.clone()),
        prerelease: own.prerelease.or(base.prerelease),
        latest: own.latest.or(base.latest),
        names: own.names.clone().or_else(|| base.names.clone()),
        aliases: own.aliases.clone().or_else(|| base.aliases.clone()),
        pins: own.pins.clone().or_else(|| base.pins.clone()),
        recheck: own.recheck.clone().or_else(|| base.recheck.clone()),
    }
}

fn merge_archive(defaults: Option<&ArchiveSpec>, own: Option<&ArchiveSpec>) -> Option<ArchiveSpec> {
    match (defaults, own) {
        (None, None) => None,
        (Some(base), None) => Some(base.clone()),
        (None, Some(own)) => Some(own.clone()),
        (Some(base), Some(own)) => Some(ArchiveSpec {
            keep: own.keep.or(base.keep),
            older_than_days: own.older_than_days.or(base.older_than_days),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::model::SetTimezoneSpec;

    fn import(name: &str) -> Import {
        Import {
            name: name.into(),
            tags: None,
            platforms: None,
            variants: None,
            destinations: None,
            transform: None,
            owners: None,
            vendor: None,
            archive: None,
            settle: None,
        }
    }

    fn destination(repository: &str) -> DestinationSpec {
        DestinationSpec {
            registry: None,
            project: None,
            repository: repository.into(),
        }
    }

    #[test]
    fn an_import_without_fields_inherits_everything() {
        let defaults = ImportDefaults {
            destinations: Some(vec![destination("busybox")]),
            transform: Some(vec![TransformSpec::SetTimezone(SetTimezoneSpec {
                zone: "UTC".into(),
            })]),
            tags: Some(TagSpec {
                semver: Some(">=1".into()),
                ..TagSpec::default()
            }),
            platforms: Some(vec!["linux/amd64".into()]),
            owners: Some(vec!["group:platform".into()]),
            vendor: Some("Platform".into()),
            archive: Some(ArchiveSpec {
                keep: Some(3),
                older_than_days: None,
            }),
        };
        let merged = merge_import(&defaults, &import("stable"));
        assert_eq!(merged.destinations, vec![destination("busybox")]);
        assert_eq!(merged.transform.len(), 1);
        assert_eq!(merged.tags.semver.as_deref(), Some(">=1"));
        assert_eq!(merged.platforms, vec!["linux/amd64".to_string()]);
        assert_eq!(merged.owners, vec!["group:platform".to_string()]);
        assert_eq!(merged.vendor.as_deref(), Some("Platform"));
        assert_eq!(merged.archive.unwrap().keep, Some(3));
    }

    #[test]
    fn tags_merge_field_by_field_and_inner_lists_are_replaced() {
        let defaults = TagSpec {
            include_regex: Some("^1\\.".into()),
            exclude_regex: Some(vec!["-rc".into(), "-beta".into()]),
            semver_only: Some(false),
            aliases: Some(vec!["latest".into()]),
            pins: Some(BTreeMap::from([("1.0.0".into(), "sha256:aa".into())])),
            ..TagSpec::default()
        };
        let own = TagSpec {
            exclude_regex: Some(vec!["-musl".into()]),
            latest: Some(2),
            ..TagSpec::default()
        };
        let merged = merge_tags(Some(&defaults), Some(&own));
        assert_eq!(merged.include_regex.as_deref(), Some("^1\\."));
        assert_eq!(merged.exclude_regex, Some(vec!["-musl".to_string()]));
        assert_eq!(merged.semver_only, Some(false));
        assert_eq!(merged.latest, Some(2));
        assert_eq!(merged.aliases, Some(vec!["latest".to_string()]));
        assert_eq!(merged.pins.unwrap().len(), 1);
    }

    #[test]
    fn lists_set_by_the_import_replace_the_defaults_wholesale() {
        let defaults = ImportDefaults {
            owners: Some(vec!["group:a".into(), "group:b".into()]),
            destinations: Some(vec![destination("one"), destination("two")]),
            ..ImportDefaults::default()
        };
        let mut own = import("x");
        own.owners = Some(vec!["group:c".into()]);
        own.destinations = Some(vec![]);
        let merged = merge_import(&defaults, &own);
        assert_eq!(merged.owners, vec!["group:c".to_string()]);
        assert!(
            merged.destinations.is_empty(),
            "an explicit empty list wins"
        );
    }

    #[test]
    fn archive_merges_field_by_field() {
        let defaults = ArchiveSpec {
            keep: Some(5),
            older_than_days: Some(30),
        };
        let own = ArchiveSpec {
            keep: None,
            older_than_days: Some(7),
        };
        let merged = merge_archive(Some(&defaults), Some(&own)).unwrap();
        assert_eq!(merged.keep, Some(5));
        assert_eq!(merged.older_than_days, Some(7));
        assert_eq!(merge_archive(None, None), None);
    }
}
