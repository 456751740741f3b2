use super::*;

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn rules() -> TagRules {
    TagRules {
        semver_only: true,
        ..TagRules::default()
    }
}

fn names(sel: &Selection) -> Vec<&str> {
    sel.tags.iter().map(|t| t.tag.as_str()).collect()
}

fn aliases(sel: &Selection) -> Vec<(&str, &str)> {
    sel.aliases
        .iter()
        .map(|a| (a.alias.as_str(), a.target.as_str()))
        .collect()
}

const FALLBACK: &str = "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn tolerant_versions() {
    assert_eq!(parse_version("3.20"), Some(Version::new(3, 20, 0)));
    assert_eq!(parse_version("v1.2.3"), Some(Version::new(1, 2, 3)));
    assert_eq!(parse_version("8"), Some(Version::new(8, 0, 0)));
    let glibc = parse_version("1.37.0-glibc").unwrap();
    assert_eq!(glibc.pre.as_str(), "glibc");
    assert_eq!(parse_version("3.12-alpine").unwrap().pre.as_str(), "alpine");
    for not in [
        "latest",
        "1.2.3.4",
        "2024.01.05",
        "",
        "v",
        "1..2",
        "1.2.3-",
        "99999999999999999999",
    ] {
        assert_eq!(parse_version(not), None, "{not}");
    }
    assert!(
        parse_range(">=v1.2, <v2")
            .unwrap()
            .matches(&Version::new(1, 5, 0))
    );
}

#[test]
fn semver_only_by_default_and_ordered_highest_first() {
    let sel = select_tags(
        &rules(),
        &tags(&["1.36.1", "latest", "1.37.0", "v1.36.0", "3.20", "musl"]),
    );
    assert_eq!(names(&sel), ["3.20", "1.37.0", "1.36.1", "v1.36.0"]);
    assert!(sel.warnings.is_empty());
}

#[test]
fn include_and_exclude() {
    let r = TagRules {
        include_regex: Some(r"^1\.3[78]\.\d+".into()),
        exclude_regex: vec!["-rc".into(), "glibc".into()],
        semver_only: false,
        ..rules()
    };
    let sel = select_tags(
        &r,
        &tags(&[
            "1.37.0",
            "1.37.0-glibc",
            "1.38.0-rc1",
            "1.38.0-uclibc",
            "1.36.1",
            "1.38.1",
        ]),
    );
    // A prerelease of 1.38.0 still ranks above 1.37.0.
    assert_eq!(names(&sel), ["1.38.1", "1.38.0-uclibc", "1.37.0"]);
}

#[test]
fn semver_range_and_prereleases() {
    let r = TagRules {
        semver: Some(">=1.36, <2".into()),
        ..rules()
    };
    let sel = select_tags(
        &r,
        &tags(&[
            "1.35.0",
            "1.36.0",
            "1.37.0-glibc",
            "1.37.0",
            "2.0.0",
            "1.36",
        ]),
    );
    assert_eq!(names(&sel), ["1.37.0", "1.36", "1.36.0"]);

    // A range that names a prerelease admits prereleases of that version.
    let r = TagRules {
        semver: Some(">=1.37.0-alpha, <2".into()),
        ..rules()
    };
    let sel = select_tags(&r, &tags(&["1.37.0-glibc", "1.37.0", "1.38.0-glibc"]));
    assert_eq!(names(&sel), ["1.37.0", "1.37.0-glibc"]);

    // A range never matches non-semver tags, even when semverOnly is off.
    let r = TagRules {
        semver: Some(">=1".into()),
        semver_only: false,
        ..rules()
    };
    assert_eq!(
        names(&select_tags(&r, &tags(&["edge", "1.0.0"]))),
        ["1.0.0"]
    );
}

#[test]
fn latest_keeps_highest_and_orders_non_semver_after() {
    let r = TagRules {
        latest: Some(2),
        ..rules()
    };
    assert_eq!(
        names(&select_tags(
            &r,
            &tags(&["1.0.0", "1.2.0", "1.10.0", "1.9.9"])
        )),
        ["1.10.0", "1.9.9"]
    );
    let r = TagRules {
        latest: Some(3),
        semver_only: false,
        ..rules()
    };
    assert_eq!(
        names(&select_tags(
            &r,
            &tags(&["edge", "1.0.0", "bookworm", "alpine"])
        )),
        ["1.0.0", "alpine", "bookworm"]
    );
}

#[test]
fn names_bypass_filters_only_when_present() {
    let r = TagRules {
        include_regex: Some(r"^1\.".into()),
        latest: Some(1),
        names: tags(&["musl", "missing", "1.2.0", "1.1.0", FALLBACK]),
        ..rules()
    };
    let sel = select_tags(&r, &tags(&["1.1.0", "1.2.0", "musl", FALLBACK]));
    assert_eq!(names(&sel), ["1.2.0", "musl", "1.1.0"]);
    assert_eq!(sel.warnings.len(), 2, "{:?}", sel.warnings);
    assert!(sel.warnings[0].contains("missing"));
    assert!(sel.warnings[1].contains("referrers fallback"));
}

#[test]
fn referrers_fallback_tags_are_never_selected() {
    let r = TagRules {
        semver_only: false,
        ..rules()
    };
    assert_eq!(names(&select_tags(&r, &tags(&[FALLBACK, "x"]))), ["x"]);
    assert!(is_referrers_fallback_tag(FALLBACK));
    assert!(!is_referrers_fallback_tag("sha256-abc"));
}

#[test]
fn pins_are_carried() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let r = TagRules {
        pins: [
            ("1.0.0".to_string(), digest.clone()),
            ("9.9.9".to_string(), digest.clone()),
        ]
        .into(),
        ..rules()
    };
    let sel = select_tags(&r, &tags(&["1.0.0", "1.1.0"]));
    assert_eq!(
        sel.tags[1],
        SelectedTag {
            tag: "1.0.0".into(),
            pin: Some(digest)
        }
    );
    assert_eq!(sel.tags[0].pin, None);
    assert!(
        sel.warnings.iter().any(|w| w.contains("9.9.9")),
        "{:?}",
        sel.warnings
    );
}

#[test]
fn alias_templates_point_at_highest_member() {
    let r = TagRules {
        aliases: tags(&["{major}.{minor}", "{major}", "latest"]),
        ..rules()
    };
    let sel = select_tags(&r, &tags(&["1.36.0", "1.36.1", "1.37.0", "2.0.0"]));
    assert_eq!(
        aliases(&sel),
        [
            ("2.0", "2.0.0"),
            ("1.37", "1.37.0"),
            ("1.36", "1.36.1"),
            ("2", "2.0.0"),
            ("1", "1.37.0"),
            ("latest", "2.0.0"),
        ]
    );
}

#[test]
fn alias_named_groups_and_non_members() {
    let r = TagRules {
        include_regex: Some(r"^(?P<ver>\d+\.\d+)(?:\.\d+)?-(?P<distro>alpine|debian)$".into()),
        semver_only: false,
        aliases: tags(&["{distro}", "{ver}-{distro}", "{major}-{distro}"]),
        names: tags(&["edge"]),
        ..rules()
    };
    let sel = select_tags(
        &r,
        &tags(&[
            "3.12.1-alpine",
            "3.12-alpine",
            "3.13.0-debian",
            "2.0.0-alpine",
            "edge",
        ]),
    );
    assert_eq!(
        aliases(&sel),
        [
            ("debian", "3.13.0-debian"),
            ("alpine", "3.12.1-alpine"),
            ("3.13-debian", "3.13.0-debian"),
            ("2.0-alpine", "2.0.0-alpine"),
            ("3-debian", "3.13.0-debian"),
            ("3-alpine", "3.12.1-alpine"),
            ("2-alpine", "2.0.0-alpine"),
        ]
    );
    // `3.12-alpine` is itself selected: that alias is dropped with a warning.
    assert!(
        sel.warnings.iter().any(|w| w.contains("`3.12-alpine`")),
        "{:?}",
        sel.warnings
    );
}

#[test]
fn alias_to_names_tag_by_version_not_position() {
    let r = TagRules {
        semver: Some("<2".into()),
        names: tags(&["2.1.0"]),
        aliases: tags(&["latest"]),
        ..rules()
    };
    let sel = select_tags(&r, &tags(&["1.0.0", "2.1.0"]));
    assert_eq!(names(&sel), ["1.0.0", "2.1.0"]);
    assert_eq!(aliases(&sel), [("latest", "2.1.0")]);
}

#[test]
fn unknown_placeholder_warns() {
    let r = TagRules {
        aliases: tags(&["{flavour}"]),
        ..rules()
    };
    let sel = select_tags(&r, &tags(&["1.0.0"]));
    assert!(sel.aliases.is_empty());
    assert!(sel.warnings[0].contains("{flavour}"), "{:?}", sel.warnings);
}

#[test]
fn broken_rules_select_nothing() {
    let r = TagRules {
        include_regex: Some("(".into()),
        ..rules()
    };
    let sel = select_tags(&r, &tags(&["1.0.0"]));
    assert!(sel.tags.is_empty());
    assert_eq!(sel.warnings.len(), 1);
}

#[test]
fn names_alone_select_exactly_those_names() {
    let upstream = tags(&["bookworm-slim", "bullseye-slim", "12.8-slim", "latest"]);
    let only = TagRules {
        semver_only: false,
        names: tags(&["bookworm-slim"]),
        ..TagRules::default()
    };
    let sel = select_tags(&only, &upstream);
    assert_eq!(names(&sel), ["bookworm-slim"]);
    // With a filter beside them, names add to what the filter selects.
    let with_filter = TagRules {
        include_regex: Some("^bullseye".into()),
        ..only.clone()
    };
    let sel = select_tags(&with_filter, &upstream);
    let mut got = names(&sel);
    got.sort();
    assert_eq!(got, ["bookworm-slim", "bullseye-slim"]);
}

#[test]
fn names_alone_ignore_the_semver_only_default() {
    // `semverOnly` defaults to true; it must not turn `names` into "every version plus these".
    let r = TagRules {
        names: tags(&["1.37.0"]),
        ..rules()
    };
    let sel = select_tags(&r, &tags(&["1.36.0", "1.37.0", "1.38.0", "latest"]));
    assert_eq!(names(&sel), ["1.37.0"]);
    assert!(r.names_alone());
}

#[test]
fn prereleases_are_excluded_unless_asked_for_or_named() {
    let upstream = tags(&["1.0.0", "2.0.0-rc1", "1.5.0-beta.2", "1.37.0-glibc"]);
    let r = TagRules {
        latest: Some(1),
        ..rules()
    };
    assert_eq!(names(&select_tags(&r, &upstream)), ["1.37.0-glibc"]);
    let r = TagRules {
        latest: Some(1),
        ..rules()
    };
    assert_eq!(
        names(&select_tags(&r, &tags(&["1.0.0", "2.0.0-rc1"]))),
        ["1.0.0"]
    );
    let with = TagRules {
        prerelease: true,
        ..r.clone()
    };
    assert_eq!(
        names(&select_tags(&with, &tags(&["1.0.0", "2.0.0-rc1"]))),
        ["2.0.0-rc1"]
    );
    let named = TagRules {
        names: tags(&["2.0.0-rc1"]),
        ..r
    };
    assert_eq!(
        names(&select_tags(&named, &tags(&["1.0.0", "2.0.0-rc1"]))),
        ["1.0.0", "2.0.0-rc1"]
    );
    for (tag, pre) in [
        ("2.0.0-rc1", true),
        ("1.5.0-beta.2", true),
        ("1.0.0-alpha", true),
        ("3.1.0-SNAPSHOT", true),
        ("1.0.0-rc.1-alpine", true),
        ("1.37.0-glibc", false),
        ("3.12-alpine", false),
        ("1.2.3", false),
    ] {
        assert_eq!(is_prerelease(&parse_version(tag).unwrap()), pre, "{tag}");
    }
}

fn verdicts(rules: &TagRules, upstream: &[&str]) -> Vec<String> {
    explain_tags(rules, &tags(upstream))
        .iter()
        .map(|e| format!("{} {}", e.tag, e.verdict))
        .collect()
}

#[test]
fn explanation_gives_one_reason_per_upstream_tag() {
    let r = TagRules {
        include_regex: Some(r"^1\.".into()),
        exclude_regex: vec!["-rc".into()],
        semver: Some(">=1.36, <2".into()),
        latest: Some(2),
        names: tags(&["1.30.0"]),
        ..rules()
    };
    let upstream = [
        "1.35.0",
        "1.36.0",
        "1.37.0",
        "1.38.0",
        "1.38.1-rc1",
        "2.0.0",
        "1.30.0",
        "latest",
        FALLBACK,
    ];
    assert_eq!(
        verdicts(&r, &upstream),
        [
            "2.0.0 dropped: does not match includeRegex ^1\\.",
            "1.38.1-rc1 dropped: excludeRegex -rc",
            "1.38.0 selected: includeRegex, semver >=1.36, <2, latest 2",
            "1.37.0 selected: includeRegex, semver >=1.36, <2, latest 2",
            "1.36.0 dropped: not in latest 2",
            "1.35.0 dropped: outside semver >=1.36, <2",
            "1.30.0 selected: names",
            "latest dropped: does not match includeRegex ^1\\.",
            format!("{FALLBACK} dropped: referrers fallback tag (an attachment)").as_str(),
        ]
    );
    let alone = TagRules {
        names: tags(&["1.37.0"]),
        ..rules()
    };
    assert_eq!(
        verdicts(&alone, &["1.37.0", "1.38.0"]),
        [
            "1.38.0 dropped: not in names (names given alone)",
            "1.37.0 selected: names"
        ]
    );
    let plain = rules();
    assert_eq!(
        verdicts(&plain, &["edge", "2.0.0-rc1", "1.0.0"]),
        [
            "2.0.0-rc1 dropped: pre-release (prerelease: false)",
            "1.0.0 selected: semverOnly",
            "edge dropped: not a version (semverOnly)"
        ]
    );
}

/// The examples of docs/reference/selection.md, row by row.
#[test]
fn documented_examples() {
    let upstream = tags(&[
        "1.35.0",
        "1.36.0",
        "1.36.1",
        "1.37.0",
        "1.38.0-rc1",
        "2.0.0",
        "latest",
        "musl",
    ]);
    let rows: Vec<(TagRules, &[&str])> = vec![
        (rules(), &["2.0.0", "1.37.0", "1.36.1", "1.36.0", "1.35.0"]),
        (
            TagRules {
                names: tags(&["1.37.0"]),
                ..rules()
            },
            &["1.37.0"],
        ),
        (
            TagRules {
                names: tags(&["musl"]),
                semver_only: false,
                ..rules()
            },
            &["musl"],
        ),
        (
            TagRules {
                latest: Some(1),
                ..rules()
            },
            &["2.0.0"],
        ),
        (
            TagRules {
                latest: Some(1),
                prerelease: true,
                ..rules()
            },
            &["2.0.0"],
        ),
        (
            TagRules {
                semver: Some(">=1.36, <2".into()),
                latest: Some(2),
                ..rules()
            },
            &["1.37.0", "1.36.1"],
        ),
        (
            TagRules {
                include_regex: Some(r"^1\.3[67]\.".into()),
                names: tags(&["musl"]),
                ..rules()
            },
            &["1.37.0", "1.36.1", "1.36.0", "musl"],
        ),
        (
            TagRules {
                semver: Some("^1".into()),
                names: tags(&["1.38.0-rc1"]),
                ..rules()
            },
            &["1.37.0", "1.36.1", "1.36.0", "1.35.0", "1.38.0-rc1"],
        ),
        (
            TagRules {
                exclude_regex: vec![r"^1\.35".into()],
                semver_only: false,
                ..rules()
            },
            &["2.0.0", "1.37.0", "1.36.1", "1.36.0", "latest", "musl"],
        ),
    ];
    for (r, expected) in rows {
        assert_eq!(names(&select_tags(&r, &upstream)), expected, "{r:?}");
    }
    let explained = TagRules {
        include_regex: Some(r"^\d".into()),
        semver: Some(">=1.36, <2".into()),
        ..rules()
    };
    let report: Vec<String> = explain_tags(&explained, &upstream)
        .iter()
        .map(|e| format!("{:10}  {}", e.tag, e.verdict))
        .collect();
    assert_eq!(
        report,
        [
            "2.0.0       dropped: outside semver >=1.36, <2",
            "1.38.0-rc1  dropped: pre-release (prerelease: false)",
            "1.37.0      selected: includeRegex, semver >=1.36, <2",
            "1.36.1      selected: includeRegex, semver >=1.36, <2",
            "1.36.0      selected: includeRegex, semver >=1.36, <2",
            "1.35.0      dropped: outside semver >=1.36, <2",
            "latest      dropped: does not match includeRegex ^\\d",
            "musl        dropped: does not match includeRegex ^\\d",
        ]
    );
}
