//! Properties of tag selection over arbitrary upstream tag lists.

use std::collections::BTreeSet;

use houba::policy::resolved::TagRules;
use houba::select::{explain_tags, parse_version, select_tags};
use proptest::prelude::*;

/// Tags that look like what registries hold: versions (partial, `v`-prefixed, prereleases),
/// words, and arbitrary strings.
fn tag() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..4, 0u64..12, 0u64..6).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        (0u64..4, 0u64..12).prop_map(|(a, b)| format!("{a}.{b}")),
        (0u64..4, 0u64..12, 0u64..6).prop_map(|(a, b, c)| format!("v{a}.{b}.{c}")),
        (0u64..4, 0u64..12, "(alpine|glibc|rc1|debian)")
            .prop_map(|(a, b, s)| format!("{a}.{b}-{s}")),
        "(latest|edge|stable|musl|bookworm)",
        "[a-z0-9._-]{1,12}",
        any::<String>(),
    ]
}

fn rules() -> impl Strategy<Value = TagRules> {
    (
        any::<bool>(),
        prop::option::of(0usize..6),
        prop::option::of(prop_oneof![
            Just(r"^\d+\.\d+".to_string()),
            Just(r"^(?P<maj>\d+)\.\d+(?:\.\d+)?-(?P<distro>alpine|debian)$".to_string()),
            Just(r"^v".to_string()),
        ]),
        prop::option::of(prop_oneof![
            Just(">=1, <3".to_string()),
            Just("^2.1".to_string()),
            Just(">=1.2.0-alpha".to_string()),
        ]),
        prop::collection::vec(
            prop_oneof![
                Just("{major}".to_string()),
                Just("{major}.{minor}".to_string()),
                Just("latest".to_string()),
                Just("{distro}".to_string()),
                Just("{maj}-{distro}".to_string()),
                Just("{major}.{minor}.{patch}".to_string()),
            ],
            0..4,
        ),
        prop::collection::vec(tag(), 0..3),
        prop::collection::vec(
            prop_oneof![
                Just("-rc".to_string()),
                Just("glibc".to_string()),
                Just("^v".to_string())
            ],
            0..2,
        ),
        any::<bool>(),
    )
        .prop_map(
            |(
                semver_only,
                latest,
                include_regex,
                semver,
                aliases,
                names,
                exclude_regex,
                prerelease,
            )| {
                TagRules {
                    include_regex,
                    exclude_regex,
                    semver_only,
                    semver,
                    prerelease,
                    latest,
                    names,
                    aliases,
                    pins: Default::default(),
                }
            },
        )
}

/// A list with a permutation of it.
fn list_and_shuffle() -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
    prop::collection::vec(tag(), 0..24).prop_flat_map(|list| {
        let shuffled = Just(list.clone()).prop_shuffle();
        (Just(list), shuffled)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_and_is_order_independent(rules in rules(), (list, shuffled) in list_and_shuffle()) {
        let a = select_tags(&rules, &list);
        let b = select_tags(&rules, &shuffled);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn aliases_point_at_selected_tags(rules in rules(), list in prop::collection::vec(tag(), 0..24)) {
        let sel = select_tags(&rules, &list);
        let selected: BTreeSet<&str> = sel.tags.iter().map(|t| t.tag.as_str()).collect();
        prop_assert_eq!(selected.len(), sel.tags.len(), "a tag is selected twice");
        let mut seen = BTreeSet::new();
        for alias in &sel.aliases {
            prop_assert!(selected.contains(alias.target.as_str()), "{:?}", alias);
            prop_assert!(!selected.contains(alias.alias.as_str()), "{:?}", alias);
            prop_assert!(seen.insert(alias.alias.as_str()), "alias twice: {:?}", alias);
        }
        for t in &sel.tags {
            prop_assert!(list.contains(&t.tag));
            prop_assert!(!t.tag.starts_with("sha256-") || t.tag.len() != 71);
        }
    }

    #[test]
    fn explanation_agrees_with_selection(rules in rules(), list in prop::collection::vec(tag(), 0..24)) {
        let sel = select_tags(&rules, &list);
        let selected: BTreeSet<&str> = sel.tags.iter().map(|t| t.tag.as_str()).collect();
        let explained = explain_tags(&rules, &list);
        let distinct: BTreeSet<&str> = list.iter().map(String::as_str).collect();
        prop_assert_eq!(explained.len(), distinct.len(), "one explanation per distinct tag");
        for e in &explained {
            prop_assert_eq!(e.verdict.is_selected(), selected.contains(e.tag.as_str()), "{} {}", e.tag, e.verdict);
        }
    }

    #[test]
    fn latest_bounds_semver_tags(mut rules in rules(), n in 0usize..5, list in prop::collection::vec(tag(), 0..24)) {
        rules.latest = Some(n);
        rules.names.clear();
        let sel = select_tags(&rules, &list);
        let semver = sel.tags.iter().filter(|t| parse_version(&t.tag).is_some()).count();
        prop_assert!(semver <= n, "{} semver tags for latest {}", semver, n);
        prop_assert!(sel.tags.len() <= n);
    }

    #[test]
    fn arbitrary_strings_never_panic(
        include in prop::option::of(any::<String>()),
        template in any::<String>(),
        list in prop::collection::vec(any::<String>(), 0..16),
    ) {
        // Rules here may be invalid (validation would reject them): selection still must not
        // panic, and then selects nothing through the filters.
        let rules = TagRules {
            include_regex: include,
            semver_only: false,
            aliases: vec![template],
            ..TagRules::default()
        };
        let _ = select_tags(&rules, &list);
        for t in &list {
            let _ = parse_version(t);
        }
    }
}
