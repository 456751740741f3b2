//! What a valid policy resolves to: defaults merged, variants, destinations, rosters.

mod validate_support;

use std::path::PathBuf;
use std::time::Duration;

use houba::config::RegistryEntry;
use houba::policy::resolved::{
    ArtifactType, DeletionMode, Destination, ResolvedPolicy, TransformStep,
};
use houba::policy::{Code, load_policies, load_policy_source};
use validate_support::test_settings;

fn load_one(path: &str) -> ResolvedPolicy {
    let outcome = load_policies(&[PathBuf::from(path)], &test_settings());
    assert!(outcome.is_ok(), "{:?}", outcome.diagnostics);
    assert_eq!(outcome.policies.len(), 1);
    outcome.policies.into_iter().next().unwrap()
}

fn local(repository: &str) -> Destination {
    Destination {
        registry: "local".into(),
        repository: repository.into(),
    }
}

#[test]
fn the_busybox_example_resolves_as_documented() {
    let policy = load_one("policies/busybox.yaml");
    assert_eq!(policy.name, "busybox");
    assert_eq!(policy.artifact_type, ArtifactType::Image);
    assert_eq!(policy.deletion_mode, DeletionMode::Purge);
    assert_eq!(policy.source.repository, "library/busybox");
    assert_eq!(policy.origin.line, 5);
    let stable = &policy.imports[0];
    assert_eq!(
        stable.tags.include_regex.as_deref(),
        Some(r"^1\.3[67]\.\d+$")
    );
    assert!(stable.tags.semver_only, "semverOnly defaults to true");
    assert_eq!(stable.tags.aliases, vec!["{major}.{minor}", "latest"]);
    assert_eq!(stable.destinations, vec![local("mirror/busybox")]);
    assert_eq!(stable.owners, vec!["group:default/platform"]);
    assert_eq!(stable.vendor.as_deref(), Some("Example Platform Team"));
    assert_eq!(stable.variants.len(), 1);
    assert_eq!(stable.variants[0].name, "default");
    assert_eq!(stable.variants[0].suffix, "");
    assert_eq!(stable.settle, Duration::from_secs(24 * 3600));
    assert!(
        stable.platforms.is_empty(),
        "busybox is the copy path: no platform filter"
    );
}

#[test]
fn the_debian_example_has_two_timezone_variants_and_two_owners() {
    let policy = load_one("policies/debian-tz.yaml");
    let import = &policy.imports[0];
    assert!(!import.tags.semver_only);
    assert_eq!(import.tags.names, vec!["bookworm-slim"]);
    let variants: Vec<(&str, &str, &[TransformStep])> = import
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.suffix.as_str(), v.transform.as_slice()))
        .collect();
    assert_eq!(
        variants,
        vec![
            (
                "eu",
                "-eu",
                &[TransformStep::SetTimezone {
                    zone: "Europe/Paris".into()
                }][..]
            ),
            (
                "us",
                "-us",
                &[TransformStep::SetTimezone {
                    zone: "America/New_York".into()
                }][..]
            ),
        ]
    );
    assert_eq!(import.owners.len(), 2);
}

#[test]
fn defaults_are_merged_into_each_import() {
    let policy = load_one("testdata/policies/valid/defaults-merge.yaml");
    let mainline = &policy.imports[0];
    let stable = &policy.imports[1];
    // Inherited as a whole.
    assert_eq!(mainline.owners, vec!["group:default/web"]);
    assert_eq!(mainline.platforms.len(), 2);
    assert_eq!(mainline.destinations, vec![local("web/nginx")]);
    // `tags` merged field by field.
    assert_eq!(
        mainline.tags.include_regex.as_deref(),
        Some(r"^1\.27\.\d+$")
    );
    assert_eq!(mainline.tags.latest, Some(2));
    assert_eq!(mainline.tags.exclude_regex, vec!["-perl$", "-otel$"]);
    assert_eq!(mainline.tags.semver.as_deref(), Some(">=1.26, <2"));
    assert_eq!(mainline.tags.aliases, vec!["{major}.{minor}"]);
    assert_eq!(
        stable.tags.aliases,
        vec!["stable"],
        "lists are replaced, not appended"
    );
    // Lists set by the import replace the defaults.
    assert_eq!(
        stable.owners,
        vec!["group:default/web", "user:default/jdoe"]
    );
    // `archive` merged field by field.
    let archive = stable.archive.as_ref().unwrap();
    assert_eq!((archive.keep, archive.older_than_days), (Some(1), Some(30)));
    assert_eq!(policy.labels.get("shard").map(String::as_str), Some("2"));
}

#[test]
fn inherited_transforms_precede_variant_steps_and_rosters_resolve() {
    let policy = load_one("testdata/policies/valid/all-transforms.yaml");
    let import = &policy.imports[0];
    assert_eq!(
        import.transform,
        vec![
            TransformStep::InjectCa {
                certs: vec!["corporate-root".into()]
            },
            TransformStep::RewritePackageSources {
                mirror: "internal".into(),
                managers: vec![],
            },
        ]
    );
    assert_eq!(import.variants.len(), 3);
    assert_eq!(import.variants[0].suffix, "");
    assert_eq!(import.variants[2].suffix, ".utc");
    assert_eq!(import.settle, Duration::from_secs(5400));
    assert_eq!(policy.deletion_mode, DeletionMode::Mark);
    assert_eq!(import.tags.names, vec!["noble", "24.04"]);
}

#[test]
fn a_semver_range_with_v_prefixes_is_normalised_for_later_stages() {
    let policy = load_one("testdata/policies/valid/semver-leading-v.yaml");
    let range = policy.imports[0].tags.semver.as_deref().unwrap();
    assert_eq!(range, ">=3.1, <4");
    assert!(semver::VersionReq::parse(range).is_ok());
}

#[test]
fn an_omitted_registry_resolves_to_the_only_roster_entry() {
    let policy = load_one("testdata/policies/valid/registry-omitted.yaml");
    assert_eq!(
        policy.imports[0].destinations,
        vec![local("data/memcached")]
    );
}

#[test]
fn an_omitted_registry_is_an_error_when_the_roster_has_several_entries() {
    let mut settings = test_settings();
    let mut second: RegistryEntry = settings.registries["local"].clone();
    second.name = "backup".into();
    settings.registries.insert("backup".into(), second);
    let outcome = load_policies(
        &[PathBuf::from(
            "testdata/policies/valid/registry-omitted.yaml",
        )],
        &settings,
    );
    let codes: Vec<(Code, usize, usize)> = outcome
        .diagnostics
        .iter()
        .map(|d| (d.code(), d.line, d.column))
        .collect();
    assert_eq!(codes, vec![(Code::AmbiguousRegistry, 11, 22)]);
    assert!(outcome.policies.is_empty());
    let help = outcome.diagnostics[0].help.as_deref().unwrap();
    assert!(
        help.contains("`backup`") && help.contains("`local`"),
        "{help}"
    );
}

#[test]
fn an_empty_roster_makes_every_destination_an_error_that_says_so() {
    let mut settings = test_settings();
    settings.registries.clear();
    let outcome = load_policies(&[PathBuf::from("policies/busybox.yaml")], &settings);
    assert_eq!(outcome.diagnostics.len(), 1);
    assert_eq!(outcome.diagnostics[0].code(), Code::UnknownRegistry);
    assert!(
        outcome.diagnostics[0]
            .help
            .as_deref()
            .unwrap()
            .contains("roster is empty")
    );
}

#[test]
fn policies_are_sorted_by_name_and_counted() {
    let outcome = load_policies(
        &[PathBuf::from("testdata/policies/valid")],
        &test_settings(),
    );
    assert!(outcome.is_ok());
    let names: Vec<&str> = outcome.policies.iter().map(|p| p.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(outcome.files, 12);
    assert_eq!(outcome.documents, outcome.policies.len());
}

#[test]
fn the_content_digest_follows_bytes_and_names_not_location() {
    let settings = test_settings();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string("policies/busybox.yaml").unwrap();
    std::fs::write(a.path().join("busybox.yaml"), &text).unwrap();
    std::fs::write(b.path().join("busybox.yaml"), &text).unwrap();
    let first = load_policies(&[a.path().to_path_buf()], &settings);
    let second = load_policies(&[b.path().to_path_buf()], &settings);
    assert!(first.content_digest.starts_with("sha256:"));
    assert_eq!(first.content_digest, second.content_digest);
    std::fs::write(b.path().join("busybox.yaml"), text.replace("24h", "12h")).unwrap();
    let edited = load_policies(&[b.path().to_path_buf()], &settings);
    assert_ne!(first.content_digest, edited.content_digest);
    std::fs::rename(b.path().join("busybox.yaml"), b.path().join("renamed.yaml")).unwrap();
    let renamed = load_policies(&[b.path().to_path_buf()], &settings);
    assert_ne!(edited.content_digest, renamed.content_digest);
}

#[test]
fn directories_are_walked_recursively_skipping_hidden_entries_and_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string("policies/busybox.yaml").unwrap();
    std::fs::create_dir_all(dir.path().join("team/nested")).unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join("team/nested/busybox.yml"), &text).unwrap();
    std::fs::write(dir.path().join(".git/busybox.yaml"), "not: [yaml").unwrap();
    std::fs::write(dir.path().join("README.md"), "# not a policy").unwrap();
    let outcome = load_policies(&[dir.path().to_path_buf()], &test_settings());
    assert!(outcome.is_ok(), "{:?}", outcome.diagnostics);
    assert_eq!(outcome.files, 1);
    assert_eq!(
        outcome.policies[0].origin.file,
        dir.path().join("team/nested/busybox.yml")
    );
}

#[test]
fn a_missing_path_is_a_diagnostic_and_other_paths_still_load() {
    let outcome = load_policies(
        &[PathBuf::from("no/such/dir"), PathBuf::from("policies")],
        &test_settings(),
    );
    assert_eq!(outcome.diagnostics.len(), 1);
    assert_eq!(outcome.diagnostics[0].code(), Code::UnreadablePath);
    assert_eq!(outcome.diagnostics[0].line, 0);
    assert_eq!(outcome.policies.len(), 2);
}

#[test]
fn diagnostics_carry_code_help_and_a_snippet_label() {
    let text = "apiVersion: houba.io/v1alpha1\nkind: MirrorPolicy\nmetadata: {name: x}\nspec:\n  source: {registry: docker.io, repository: library/x}\n  imports:\n    - name: a\n      tags: {includeRegx: '^1$'}\n      destinations: [{repository: x}]\n";
    let outcome = load_policy_source("x.yaml", text, &test_settings());
    assert_eq!(outcome.diagnostics.len(), 1);
    let diagnostic = &outcome.diagnostics[0];
    assert_eq!(diagnostic.code().as_str(), "houba::policy::unknown-field");
    assert_eq!((diagnostic.line, diagnostic.column), (8, 14));
    assert_eq!(
        diagnostic.help.as_deref(),
        Some("did you mean `includeRegex`?")
    );
    let mut rendered = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut rendered, diagnostic)
        .unwrap();
    assert!(rendered.contains("x.yaml:8:14"), "{rendered}");
    assert!(rendered.contains("unknown field"), "{rendered}");
    assert!(rendered.contains("includeRegx: '^1$'"), "{rendered}");
}

#[test]
fn large_policy_sets_give_the_same_answer_in_file_order() {
    // Enough files for the loader to spread them over threads; the duplicate name sits in
    // the first and the last file so the two land in different runs.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string("policies/busybox.yaml").unwrap();
    for i in 0..200 {
        let name = if i == 199 {
            "app-000".to_string()
        } else {
            format!("app-{i:03}")
        };
        let policy = text
            .replace("name: busybox", &format!("name: {name}"))
            .replace("repository: busybox", &format!("repository: app-{i:03}"));
        std::fs::write(dir.path().join(format!("app-{i:03}.yaml")), policy).unwrap();
    }
    let outcome = load_policies(&[dir.path().to_path_buf()], &test_settings());
    assert_eq!(outcome.files, 200);
    assert_eq!(outcome.policies.len(), 199);
    assert_eq!(outcome.diagnostics.len(), 1);
    let duplicate = &outcome.diagnostics[0];
    assert_eq!(duplicate.code(), Code::DuplicatePolicy);
    assert_eq!(duplicate.file, dir.path().join("app-199.yaml"));
    assert_eq!(
        duplicate.related_places()[0].file,
        dir.path().join("app-000.yaml")
    );
    let again = load_policies(&[dir.path().to_path_buf()], &test_settings());
    assert_eq!(again.content_digest, outcome.content_digest);
    assert_eq!(again.policies, outcome.policies);
}
