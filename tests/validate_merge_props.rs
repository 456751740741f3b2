//! Properties of the defaults merge over arbitrary tag rules.

use houba::policy::merge::merge_tags;
use houba::policy::model::TagSpec;
use proptest::prelude::*;

fn words() -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(proptest::collection::vec("[a-z0-9.-]{1,8}", 0..4))
}

fn tag_spec() -> impl Strategy<Value = TagSpec> {
    (
        proptest::option::of("[a-z^$.0-9]{1,10}"),
        words(),
        proptest::option::of(any::<bool>()),
        proptest::option::of(">=[0-9]\\.[0-9]"),
        proptest::option::of(1u32..50),
        words(),
        words(),
        proptest::option::of(proptest::collection::btree_map(
            "[0-9.]{1,6}",
            "sha256:[0-9a-f]{4}",
            0..3,
        )),
        proptest::option::of(any::<bool>()),
        proptest::option::of("always|never|[1-9][0-9]{0,2}[smhd]"),
    )
        .prop_map(
            |(
                include_regex,
                exclude_regex,
                semver_only,
                semver,
                latest,
                names,
                aliases,
                pins,
                prerelease,
                recheck,
            )| {
                TagSpec {
                    include_regex,
                    exclude_regex,
                    semver_only,
                    semver,
                    prerelease,
                    latest,
                    names,
                    aliases,
                    pins,
                    recheck,
                }
            },
        )
}

proptest! {
    #[test]
    fn every_field_set_by_the_import_wins_and_the_others_are_inherited(defaults in tag_spec(), own in tag_spec()) {
        let merged = merge_tags(Some(&defaults), Some(&own));
        prop_assert_eq!(merged.include_regex, own.include_regex.clone().or(defaults.include_regex.clone()));
        prop_assert_eq!(merged.exclude_regex, own.exclude_regex.clone().or(defaults.exclude_regex.clone()));
        prop_assert_eq!(merged.semver_only, own.semver_only.or(defaults.semver_only));
        prop_assert_eq!(merged.semver, own.semver.clone().or(defaults.semver.clone()));
        prop_assert_eq!(merged.prerelease, own.prerelease.or(defaults.prerelease));
        prop_assert_eq!(merged.latest, own.latest.or(defaults.latest));
        prop_assert_eq!(merged.names, own.names.clone().or(defaults.names.clone()));
        prop_assert_eq!(merged.aliases, own.aliases.clone().or(defaults.aliases.clone()));
        prop_assert_eq!(merged.pins, own.pins.clone().or(defaults.pins.clone()));
        prop_assert_eq!(merged.recheck, own.recheck.clone().or(defaults.recheck.clone()));
    }

    #[test]
    fn merging_with_nothing_is_the_identity(spec in tag_spec()) {
        prop_assert_eq!(merge_tags(None, Some(&spec)), spec.clone());
        prop_assert_eq!(merge_tags(Some(&spec), None), spec.clone());
        prop_assert_eq!(merge_tags(Some(&spec), Some(&spec)), spec);
    }
}
