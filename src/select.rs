//! Tag selection: which upstream tags an import admits, and which moving aliases point where.
//!
//! Pure: a function of the import's `TagRules` and the upstream tag list. The output does not
//! depend on the order of the upstream list.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::{Captures, Regex};
use semver::{BuildMetadata, Prerelease, Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::policy::resolved::TagRules;

/// The outcome of selecting one import's tags.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Selection {
    /// Highest version first, then non-semver tags, then tags admitted only by `names`.
    pub tags: Vec<SelectedTag>,
    /// Every target is one of `tags`.
    pub aliases: Vec<AliasTarget>,
    /// Things a policy author should hear about (a listed name missing upstream, …).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedTag {
    pub tag: String,
    /// `sha256:…` the tag is pinned to, when the policy pins it.
    pub pin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasTarget {
    pub alias: String,
    pub target: String,
}

/// Tags the OCI referrers fallback schema writes (`sha256-<64 hex>`): attachments, never images.
pub use crate::oci::is_referrers_fallback_tag;

/// Parses a tag as a version, tolerantly: a `v` prefix is ignored, missing minor/patch count as
/// 0 (`3.20` → 3.20.0), and a suffix after `-` is a prerelease (`1.37.0-glibc`). Numbers with
/// leading zeros are not versions (`2024.01.05` is a date, not 2024.1.5).
pub fn parse_version(tag: &str) -> Option<Version> {
    static TOLERANT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^[vV]?(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?(?:\.(0|[1-9][0-9]*))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$",
        )
        .expect("static regex")
    });
    let caps = TOLERANT.captures(tag)?;
    let number =
        |i: usize| -> Option<u64> { caps.get(i).map_or(Some(0), |m| m.as_str().parse().ok()) };
    let mut version = Version::new(number(1)?, number(2)?, number(3)?);
    if let Some(pre) = caps.get(4) {
        version.pre = Prerelease::new(pre.as_str()).ok()?;
    }
    if let Some(build) = caps.get(5) {
        version.build = BuildMetadata::new(build.as_str()).ok()?;
    }
    Some(version)
}

/// Parses a semver range, tolerating `v` before version numbers (`>=v1.2, <v2`).
pub fn parse_range(range: &str) -> Result<VersionReq, semver::Error> {
    static V_PREFIX: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(^|[\s,<>=~^])[vV]([0-9])").expect("static regex"));
    VersionReq::parse(&V_PREFIX.replace_all(range, "${1}${2}"))
}

/// A candidate tag with its parsed version, ordered "highest first".
struct Ranked<'t> {
    tag: &'t str,
    version: Option<Version>,
}

/// Highest version first; equal versions (`v1.2.3`, `1.2.3`) by tag; non-semver tags after all
/// versions, by tag.
fn by_rank(a: &Ranked<'_>, b: &Ranked<'_>) -> Ordering {
    match (&a.version, &b.version) {
        (Some(va), Some(vb)) => vb.cmp(va).then_with(|| a.tag.cmp(b.tag)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.tag.cmp(b.tag),
    }
}

/// The compiled filters of one import.
struct Filters {
    include: Option<Regex>,
    exclude: Vec<Regex>,
    range: Option<VersionReq>,
}

/// Compiles the rules. Validation guarantees they compile; should one not, nothing is selected
/// through the filters (never everything) and a warning says why.
fn compile(rules: &TagRules, warnings: &mut Vec<String>) -> Option<Filters> {
    let mut ok = true;
    let mut regex = |source: &str, what: &str| match Regex::new(source) {
        Ok(r) => Some(r),
        Err(e) => {
            warnings.push(format!(
                "{what} `{source}` does not compile ({e}); no tag selected by filters"
            ));
            ok = false;
            None
        }
    };
    let include = rules
        .include_regex
        .as_deref()
        .and_then(|s| regex(s, "includeRegex"));
    let exclude = rules
        .exclude_regex
        .iter()
        .filter_map(|s| regex(s, "excludeRegex"))
        .collect();
    let range = match rules.semver.as_deref().map(parse_range) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            warnings.push(format!(
                "semver range `{}` does not parse ({e}); no tag selected by filters",
                rules.semver.as_deref().unwrap_or_default()
            ));
            ok = false;
            None
        }
    };
    ok.then_some(Filters {
        include,
        exclude,
        range,
    })
}

impl Filters {
    fn admits(&self, rules: &TagRules, tag: &str, version: Option<&Version>) -> bool {
        if let Some(include) = &self.include
            && !include.is_match(tag)
        {
            return false;
        }
        if self.exclude.iter().any(|r| r.is_match(tag)) {
            return false;
        }
        match (version, &self.range) {
            (None, _) if rules.semver_only => false,
            // A range constrains versions; a tag that is not one cannot satisfy it.
            (None, Some(_)) => false,
            (Some(v), Some(range)) => range.matches(v),
            _ => true,
        }
    }
}

/// Selects an import's tags from the upstream list and resolves its alias templates.
pub fn select_tags(rules: &TagRules, upstream: &[String]) -> Selection {
    let mut warnings = Vec::new();
    let filters = compile(rules, &mut warnings);
    let present: BTreeSet<&str> = upstream.iter().map(String::as_str).collect();

    // `names` alone (no regex, range, latest-N, and semverOnly off) means exactly those tags:
    // with no filter left, "every tag" is never what such a policy asks for.
    let names_only = !rules.names.is_empty()
        && rules.include_regex.is_none()
        && rules.semver.is_none()
        && rules.latest.is_none()
        && !rules.semver_only;
    let mut ranked: Vec<Ranked<'_>> = match &filters {
        None => Vec::new(),
        Some(_) if names_only => Vec::new(),
        Some(filters) => present
            .iter()
            .filter(|tag| !crate::oci::is_evidence_tag(tag))
            .map(|tag| Ranked {
                tag,
                version: parse_version(tag),
            })
            .filter(|r| filters.admits(rules, r.tag, r.version.as_ref()))
            .collect(),
    };
    ranked.sort_by(by_rank);
    if let Some(n) = rules.latest {
        ranked.truncate(n);
    }

    let mut chosen: BTreeSet<&str> = ranked.iter().map(|r| r.tag).collect();
    for name in &rules.names {
        if is_referrers_fallback_tag(name) {
            warnings.push(format!(
                "names: `{name}` is a referrers fallback tag (an attachment, not an image); never selected"
            ));
        } else if !present.contains(name.as_str()) {
            warnings.push(format!("names: `{name}` is not present upstream; skipped"));
        } else if chosen.insert(name) {
            ranked.push(Ranked {
                tag: name,
                version: parse_version(name),
            });
        }
    }

    for tag in rules.pins.keys() {
        if !chosen.contains(tag.as_str()) {
            warnings.push(format!(
                "pins: `{tag}` is not selected; its pin has no effect"
            ));
        }
    }
    let tags = ranked
        .iter()
        .map(|r| SelectedTag {
            tag: r.tag.to_string(),
            pin: rules.pins.get(r.tag).cloned(),
        })
        .collect();
    let include = filters.as_ref().and_then(|f| f.include.as_ref());
    let aliases = resolve_aliases(&rules.aliases, &ranked, &chosen, include, &mut warnings);
    Selection {
        tags,
        aliases,
        warnings,
    }
}

/// One piece of an alias template.
enum Piece<'t> {
    Literal(&'t str),
    Placeholder(&'t str),
}

fn parse_template(template: &str) -> Vec<Piece<'_>> {
    static PLACEHOLDER: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("static regex"));
    let mut pieces = Vec::new();
    let mut last = 0;
    for caps in PLACEHOLDER.captures_iter(template) {
        let whole = caps.get(0).expect("group 0 always matches");
        if whole.start() > last {
            pieces.push(Piece::Literal(&template[last..whole.start()]));
        }
        pieces.push(Piece::Placeholder(
            caps.get(1).expect("group 1 is not optional").as_str(),
        ));
        last = whole.end();
    }
    if last < template.len() {
        pieces.push(Piece::Literal(&template[last..]));
    }
    pieces
}

/// Renders a template for one tag, or `None` when the tag cannot fill a placeholder (not a
/// version, or the named group did not take part in the match): the tag is then not a member.
fn render(pieces: &[Piece<'_>], tag: &Ranked<'_>, caps: Option<&Captures<'_>>) -> Option<String> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Placeholder("major") => out.push_str(&tag.version.as_ref()?.major.to_string()),
            Piece::Placeholder("minor") => out.push_str(&tag.version.as_ref()?.minor.to_string()),
            Piece::Placeholder("patch") => out.push_str(&tag.version.as_ref()?.patch.to_string()),
            Piece::Placeholder(group) => out.push_str(caps?.name(group)?.as_str()),
        }
    }
    Some(out)
}

/// A valid tag per the distribution spec.
fn is_valid_tag(tag: &str) -> bool {
    static TAG: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$").expect("static regex"));
    TAG.is_match(tag)
}

fn resolve_aliases(
    templates: &[String],
    ranked: &[Ranked<'_>],
    selected: &BTreeSet<&str>,
    include: Option<&Regex>,
    warnings: &mut Vec<String>,
) -> Vec<AliasTarget> {
    // Members are visited highest first, so the first tag to claim an alias is its target.
    let mut by_rank: Vec<&Ranked<'_>> = ranked.iter().collect();
    by_rank.sort_by(|a, b| self::by_rank(a, b));
    let captures: Vec<Option<Captures<'_>>> = by_rank
        .iter()
        .map(|r| include.and_then(|re| re.captures(r.tag)))
        .collect();
    let groups: BTreeSet<&str> = include
        .map(|re| re.capture_names().flatten().collect())
        .unwrap_or_default();

    // alias → (template index, rank of target)
    let mut claimed: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (t, template) in templates.iter().enumerate() {
        let pieces = parse_template(template);
        for piece in &pieces {
            if let Piece::Placeholder(name) = piece
                && !matches!(*name, "major" | "minor" | "patch")
                && !groups.contains(name)
            {
                warnings.push(format!(
                    "aliases: `{template}` uses {{{name}}}, which is neither major, minor, patch nor a named group of includeRegex; it yields no alias"
                ));
            }
        }
        for (rank, tag) in by_rank.iter().enumerate() {
            let Some(alias) = render(&pieces, tag, captures[rank].as_ref()) else {
                continue;
            };
            match claimed.get(&alias) {
                Some(&(_, held)) if held <= rank => {}
                _ => {
                    claimed.insert(alias, (t, rank));
                }
            }
        }
    }

    let mut out: Vec<(usize, usize, AliasTarget)> = Vec::new();
    for (alias, (t, rank)) in claimed {
        if selected.contains(alias.as_str()) {
            warnings.push(format!(
                "aliases: `{alias}` (from `{}`) is itself a selected tag; the alias is dropped",
                templates[t]
            ));
        } else if !is_valid_tag(&alias) || is_referrers_fallback_tag(&alias) {
            warnings.push(format!(
                "aliases: `{alias}` (from `{}`) is not a valid tag; the alias is dropped",
                templates[t]
            ));
        } else {
            let target = by_rank[rank].tag.to_string();
            out.push((t, rank, AliasTarget { alias, target }));
        }
    }
    out.sort_by(|a, b| (a.0, a.1, &a.2.alias).cmp(&(b.0, b.1, &b.2.alias)));
    out.into_iter().map(|(_, _, a)| a).collect()
}

#[cfg(test)]
mod tests;
