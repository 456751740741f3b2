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
/// A selected upstream tag.
pub struct SelectedTag {
    /// The upstream tag.
    pub tag: String,
    /// `sha256:…` the tag is pinned to, when the policy pins it.
    pub pin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// A moving tag (alias) and the selected tag it points at.
pub struct AliasTarget {
    /// The alias tag (`latest`, `1.37`).
    pub alias: String,
    /// The selected tag it points at (`1.37.1`).
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

/// Why one upstream tag was selected or dropped: data, rendered by [`Verdict`]'s `Display`
/// (`selected: includeRegex`, `dropped: excludeRegex -rc`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Verdict {
    /// Listed in `names` (names bypass every filter).
    Named,
    /// Passed the filters; `by` names the selecting ones (`includeRegex`, `semver …`,
    /// `latest N`), or `semverOnly` / `no filter` when none of them is set.
    Filtered {
        /// Names of the filters that selected the tag.
        by: Vec<String>,
    },
    /// `sha256-<hex>`: an OCI referrers fallback tag, an attachment and never an image.
    ReferrersFallback,
    /// `names` is given alone (no `includeRegex`, `semver` nor `latest`), and this tag is
    /// not one of them.
    NotNamed,
    /// Does not match `includeRegex`.
    IncludeRegex {
        /// The `includeRegex` pattern.
        pattern: String,
    },
    /// Matches one of `excludeRegex`.
    ExcludeRegex {
        /// The `excludeRegex` pattern that matched.
        pattern: String,
    },
    /// Not a version, and `semverOnly` is on (or a `semver` range is set).
    NotSemver,
    /// A pre-release (`-rc1`, `-beta.2`, …) and `prerelease` is off.
    Prerelease,
    /// A version outside the `semver` range.
    OutsideRange {
        /// The `semver` range.
        range: String,
    },
    /// Passed the filters but is not among the `latest` N highest.
    NotInLatest {
        /// How many `latest` keeps.
        n: usize,
    },
    /// The rules do not compile (validation prevents this); nothing passes the filters.
    BrokenRules,
}

impl Verdict {
    /// Whether the tag is part of the selection.
    pub fn is_selected(&self) -> bool {
        matches!(self, Verdict::Named | Verdict::Filtered { .. })
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Named => write!(f, "selected: names"),
            Verdict::Filtered { by } => write!(f, "selected: {}", by.join(", ")),
            Verdict::ReferrersFallback => {
                write!(f, "dropped: referrers fallback tag (an attachment)")
            }
            Verdict::NotNamed => write!(f, "dropped: not in names (names given alone)"),
            Verdict::IncludeRegex { pattern } => {
                write!(f, "dropped: does not match includeRegex {pattern}")
            }
            Verdict::ExcludeRegex { pattern } => write!(f, "dropped: excludeRegex {pattern}"),
            Verdict::NotSemver => write!(f, "dropped: not a version (semverOnly)"),
            Verdict::Prerelease => write!(f, "dropped: pre-release (prerelease: false)"),
            Verdict::OutsideRange { range } => write!(f, "dropped: outside semver {range}"),
            Verdict::NotInLatest { n } => write!(f, "dropped: not in latest {n}"),
            Verdict::BrokenRules => write!(f, "dropped: the tag rules do not compile"),
        }
    }
}

/// One upstream tag and what selection made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagExplanation {
    /// The upstream tag.
    pub tag: String,
    /// Why it was selected or dropped.
    pub verdict: Verdict,
}

/// Pre-release markers, matched against the first identifier of a version's suffix (`rc1`
/// in `2.0.0-rc1`, `beta` in `1.5.0-beta.2`). Other suffixes are build flavours
/// (`1.37.0-glibc`, `3.12-alpine`), not pre-releases.
static PRERELEASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?i:alpha|beta|rc|cr|pre|preview|dev|snapshot|nightly|canary|milestone|m|ea|unstable|experimental|insiders?)[0-9]*$",
    )
    .expect("static regex")
});

/// Whether a version is a pre-release: its suffix starts with a marker such as `rc`, `alpha`,
/// `beta`, `pre`, `dev`, `snapshot` or `nightly`, optionally followed by digits.
pub fn is_prerelease(version: &Version) -> bool {
    let first = version
        .pre
        .as_str()
        .split(['.', '-'])
        .next()
        .unwrap_or_default();
    !first.is_empty() && PRERELEASE.is_match(first)
}

impl Filters {
    /// The first filter that refuses the tag, or `None` when it passes them all.
    fn refuses(&self, rules: &TagRules, tag: &str, version: Option<&Version>) -> Option<Verdict> {
        if let Some(include) = &self.include
            && !include.is_match(tag)
        {
            return Some(Verdict::IncludeRegex {
                pattern: include.as_str().to_string(),
            });
        }
        if let Some(exclude) = self.exclude.iter().find(|r| r.is_match(tag)) {
            return Some(Verdict::ExcludeRegex {
                pattern: exclude.as_str().to_string(),
            });
        }
        match (version, &self.range) {
            (None, _) if rules.semver_only => Some(Verdict::NotSemver),
            // A range constrains versions; a tag that is not one cannot satisfy it.
            (None, Some(_)) => Some(Verdict::NotSemver),
            (Some(v), _) if !rules.prerelease && is_prerelease(v) => Some(Verdict::Prerelease),
            (Some(v), Some(range)) if !range.matches(v) => Some(Verdict::OutsideRange {
                range: rules.semver.clone().unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

/// The selecting filters a tag passed, as [`Verdict::Filtered`] names them.
fn selecting_filters(rules: &TagRules) -> Vec<String> {
    let mut by = Vec::new();
    if rules.include_regex.is_some() {
        by.push("includeRegex".to_string());
    }
    if let Some(range) = &rules.semver {
        by.push(format!("semver {range}"));
    }
    if let Some(n) = rules.latest {
        by.push(format!("latest {n}"));
    }
    if by.is_empty() {
        by.push(
            if rules.semver_only {
                "semverOnly"
            } else {
                "no filter"
            }
            .to_string(),
        );
    }
    by
}

/// The decision for every distinct upstream tag, plus the tags the filters selected (ranked,
/// `latest` applied) and the names added after them: the one computation behind both
/// [`select_tags`] and [`explain_tags`], so the explanation cannot disagree with the selection.
struct Decision<'t> {
    verdicts: BTreeMap<&'t str, Verdict>,
    /// In selection order: filter-selected highest first, then names in their written order.
    ranked: Vec<Ranked<'t>>,
    filters: Option<Filters>,
}

fn decide<'t>(
    rules: &TagRules,
    present: &BTreeSet<&'t str>,
    warnings: &mut Vec<String>,
) -> Decision<'t> {
    let filters = compile(rules, warnings);
    let alone = rules.names_alone();
    let mut verdicts = BTreeMap::new();
    let mut ranked = Vec::new();
    for &tag in present {
        let version = parse_version(tag);
        // cosign's `sha256-<hex>.sig/.att/.sbom` are attachments too.
        let refused = if crate::oci::is_evidence_tag(tag) {
            Some(Verdict::ReferrersFallback)
        } else if alone {
            Some(Verdict::NotNamed)
        } else {
            match &filters {
                None => Some(Verdict::BrokenRules),
                Some(f) => f.refuses(rules, tag, version.as_ref()),
            }
        };
        match refused {
            Some(verdict) => {
                verdicts.insert(tag, verdict);
            }
            None => ranked.push(Ranked { tag, version }),
        }
    }
    ranked.sort_by(by_rank);
    if let Some(n) = rules.latest
        && ranked.len() > n
    {
        for r in ranked.drain(n..) {
            verdicts.insert(r.tag, Verdict::NotInLatest { n });
        }
    }
    let by = selecting_filters(rules);
    for r in &ranked {
        verdicts.insert(r.tag, Verdict::Filtered { by: by.clone() });
    }
    for name in &rules.names {
        let Some(&tag) = present.get(name.as_str()) else {
            continue;
        };
        if crate::oci::is_evidence_tag(tag) {
            continue;
        }
        let verdict = verdicts
            .get_mut(tag)
            .expect("every present tag has a verdict");
        if !verdict.is_selected() {
            *verdict = Verdict::Named;
            ranked.push(Ranked {
                tag,
                version: parse_version(tag),
            });
        }
    }
    Decision {
        verdicts,
        ranked,
        filters,
    }
}

/// Why each upstream tag was selected or dropped, highest version first, then non-version
/// tags by name. Pure, and the same decision [`select_tags`] acts on.
pub fn explain_tags(rules: &TagRules, upstream: &[String]) -> Vec<TagExplanation> {
    let present: BTreeSet<&str> = upstream.iter().map(String::as_str).collect();
    let decision = decide(rules, &present, &mut Vec::new());
    let mut all: Vec<Ranked<'_>> = present
        .iter()
        .map(|tag| Ranked {
            tag,
            version: parse_version(tag),
        })
        .collect();
    all.sort_by(by_rank);
    all.into_iter()
        .map(|r| TagExplanation {
            tag: r.tag.to_string(),
            verdict: decision.verdicts[r.tag].clone(),
        })
        .collect()
}

/// Selects an import's tags from the upstream list and resolves its alias templates.
pub fn select_tags(rules: &TagRules, upstream: &[String]) -> Selection {
    let mut warnings = Vec::new();
    let present: BTreeSet<&str> = upstream.iter().map(String::as_str).collect();
    let Decision {
        ranked, filters, ..
    } = decide(rules, &present, &mut warnings);
    let chosen: BTreeSet<&str> = ranked.iter().map(|r| r.tag).collect();
    for name in &rules.names {
        if is_referrers_fallback_tag(name) {
            warnings.push(format!(
                "names: `{name}` is a referrers fallback tag (an attachment, not an image); never selected"
            ));
        } else if !present.contains(name.as_str()) {
            warnings.push(format!("names: `{name}` is not present upstream; skipped"));
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
