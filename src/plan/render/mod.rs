//! Plan views: Terraform-style text, JSON for machines, Markdown for PR comments.
//!
//! Pure functions from a [`Plan`] to a string. The wording of reasons, attribute lines and
//! drift details lives here, once, and is shared by every view: the model carries typed
//! reasons, never sentences.

mod json;
mod markdown;
mod text;

pub use json::{JSON_FORMAT_VERSION, JsonPlan, json_schema, render_json};
pub use markdown::render_markdown;
pub use text::render_text;

use super::model::{
    Action, AliasReason, Content, Drift, Finding, Operation, Plan, PruneMode, PruneReason,
    ReplaceReason,
};

/// Output format of plan-rendering commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Terraform-style text.
    Text,
    /// The JSON plan document (see docs/reference/plan-json.md).
    Json,
    /// Markdown for pull-request comments.
    Markdown,
}

/// ANSI colours, or nothing.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Whether to colour symbols and headings.
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn symbol(&self, sym: &str) -> String {
        let code = match sym {
            "+" => "32",
            "-" => "31",
            "-/+" => "33",
            "~" => "33",
            "!" => "35",
            _ => "0",
        };
        self.paint(code, sym)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// Render a plan in one format.
pub fn render(plan: &Plan, format: Format, style: Style) -> String {
    match format {
        Format::Text => render_text(plan, style),
        Format::Json => render_json(plan),
        Format::Markdown => render_markdown(plan),
    }
}

/// Shorten a digest for humans: `sha256:0123456789ab…`. JSON output keeps full digests.
pub fn short(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}…", &hex[..12]),
        _ => d.to_string(),
    }
}

/// Shown for a value only a rebuild can tell (Terraform's wording).
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// One attribute line, `~ name = "before" -> "after"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Change {
    /// Attribute name (`base.digest`, `owners`, `target`, …).
    pub attribute: String,
    /// Value before, `None` when the attribute is new.
    pub before: Option<String>,
    /// Value after, `None` when the attribute goes away.
    pub after: Option<String>,
}

fn change(attribute: &str, before: Option<&str>, after: Option<&str>) -> Change {
    Change {
        attribute: attribute.to_string(),
        before: before.map(str::to_string),
        after: after.map(str::to_string),
    }
}

/// Terraform symbol of an action: a new alias is created (`+`), a moved one updated (`~`).
pub fn symbol(a: &Action) -> &'static str {
    match &a.operation {
        Operation::Alias {
            reason: AliasReason::Absent,
            ..
        } => "+",
        _ => a.kind().symbol(),
    }
}

/// `# <address> will be …`
pub fn will_be(a: &Action) -> &'static str {
    match &a.operation {
        Operation::Place(p) => match p.content {
            Content::Copy => "copied",
            Content::Build(_) => "built",
        },
        Operation::Replace { .. } => "replaced",
        Operation::Restamp { .. } => "restamped",
        Operation::Alias {
            reason: AliasReason::Absent,
            ..
        } => "created",
        Operation::Alias { .. } => "re-pointed",
        Operation::Prune { .. } => "pruned",
        Operation::Attach => "completed with its evidence",
    }
}

/// Why the action is needed, one sentence.
pub fn reason(a: &Action) -> String {
    match &a.operation {
        Operation::Place(_) => "the tag is absent at the destination".into(),
        Operation::Replace { reason, .. } => match reason {
            ReplaceReason::UpstreamMoved => "the upstream digest moved",
            ReplaceReason::RecipeChanged => "the transform recipe changed",
            ReplaceReason::Unstamped => "the tag holds content houba did not place",
            ReplaceReason::Foreign => "the tag holds content placed for another artifact",
            ReplaceReason::Tampered => "the content does not match its stamp",
        }
        .into(),
        Operation::Restamp { .. } => "the content is unchanged; only the stamp differs".into(),
        Operation::Attach => {
            "the content is in place; evidence the configuration asks for is missing".into()
        }
        Operation::Alias {
            reason, target_tag, ..
        } => match reason {
            AliasReason::Absent => "the alias is absent at the destination".into(),
            AliasReason::NewHighest => {
                format!("the alias must move to the highest member, {target_tag}")
            }
            AliasReason::TargetChanged => format!("its target {target_tag} gets new content"),
            AliasReason::MovedOutside => "the alias was moved outside houba".into(),
        },
        Operation::Prune { mode, reason } => {
            let what = match mode {
                PruneMode::Delete => "deletionMode purge: the tag is deleted",
                PruneMode::Mark => "deletionMode mark: the tag is kept and marked pruned",
            };
            let address = &a.header.address;
            let owner = format!(
                "{}/{}",
                address.policy_name(),
                address.import_name().unwrap_or_default()
            );
            match reason {
                PruneReason::NoLongerSelected => format!("no longer selected by {owner} ({what})"),
                PruneReason::Orphaned => format!(
                    "an orphan: stamped by policy {}, in a repository no policy claims now ({what})",
                    address.policy_name()
                ),
            }
        }
    }
}

/// The attribute lines of an action, computed from its typed fields.
pub fn changes(a: &Action) -> Vec<Change> {
    let h = &a.header;
    let digest_after = h.after.as_deref().unwrap_or(KNOWN_AFTER_APPLY);
    match &a.operation {
        Operation::Place(p) => {
            let mut out = vec![
                change("source", None, Some(&p.source.location.to_string())),
                change("base.digest", None, Some(&p.source.digest)),
            ];
            if let Content::Build(b) = &p.content {
                if !b.steps.is_empty() {
                    out.push(change("steps", None, Some(&b.step_names().join(","))));
                }
                if !b.platforms.is_empty() {
                    out.push(change("platforms", None, Some(&b.platforms.join(","))));
                }
                out.push(change("recipe", None, Some(&b.recipe)));
            }
            if let Some(d) = &h.after {
                out.push(change("digest", None, Some(d)));
            }
            out
        }
        Operation::Replace { place, prior, .. } => {
            let mut out = Vec::new();
            let before_base = prior.as_ref().map(|s| s.base_digest.as_str());
            if before_base != Some(place.source.digest.as_str()) {
                out.push(change(
                    "base.digest",
                    before_base,
                    Some(&place.source.digest),
                ));
            }
            if let Content::Build(b) = &place.content {
                let before_recipe = prior.as_ref().and_then(|s| s.recipe.as_deref());
                if before_recipe != Some(b.recipe.as_str()) {
                    out.push(change("recipe", before_recipe, Some(&b.recipe)));
                }
            }
            out.push(change("digest", h.before.as_deref(), Some(digest_after)));
            out
        }
        Operation::Restamp { changed, .. } => {
            let mut out: Vec<Change> = changed
                .iter()
                .map(|c| change(&c.key, Some(&c.before), Some(&c.after)))
                .collect();
            if let Some(d) = &h.after {
                out.push(change("digest", h.before.as_deref(), Some(d)));
            }
            out
        }
        Operation::Alias {
            target_tag,
            current_tag,
            ..
        } => {
            let target = match (&h.before, current_tag) {
                (Some(_), Some(now)) => change("target", Some(now), Some(target_tag)),
                (Some(_), None) => change("target", Some("(no placed tag)"), Some(target_tag)),
                (None, _) => change("target", None, Some(target_tag)),
            };
            let digest = match &h.before {
                Some(b) => change("digest", Some(b), Some(digest_after)),
                None => change("digest", None, Some(digest_after)),
            };
            vec![target, digest]
        }
        Operation::Prune { .. } => vec![change("digest", h.before.as_deref(), None)],
        Operation::Attach => Vec::new(),
    }
}

/// The drift section's heading sentence: `<tag> <what is wrong>`.
pub fn drift_heading(d: &Drift) -> &'static str {
    match d.finding {
        Finding::Unstamped => "holds content houba did not place (no stamp)",
        Finding::Foreign { .. } | Finding::ForeignInRepository { .. } => {
            "holds content stamped for another policy, import or variant"
        }
        Finding::Tampered { .. } => "holds stamped content that does not match its stamp",
        Finding::AliasMoved { .. } => "is an alias that was moved outside houba",
        Finding::Bypass => "was pushed into a managed repository outside houba",
        Finding::EvidenceMissing { .. } => "lost evidence houba attached (SBOM or signature)",
    }
}

/// What houba found and what it will do about it.
pub fn drift_detail(d: &Drift) -> String {
    match &d.finding {
        Finding::Unstamped => "houba will put the desired content back".into(),
        Finding::Foreign { stamped_for } => {
            format!("stamped for {stamped_for}; houba will put the desired content back")
        }
        Finding::Tampered { claimed_base } => format!(
            "its stamp claims {claimed_base} but the content differs; houba will put the desired content back"
        ),
        Finding::AliasMoved {
            expected_tag,
            found_tag: Some(found),
        } => format!(
            "alias {} was moved outside houba from {expected_tag} to {found}; houba will point it back",
            d.location.tag
        ),
        Finding::AliasMoved {
            expected_tag,
            found_tag: None,
        } => format!("it should point at {expected_tag}; houba will point it back"),
        Finding::Bypass => {
            "an unstamped tag in a repository houba manages; houba never prunes it".into()
        }
        Finding::ForeignInRepository { stamped_by, owner } => {
            format!("stamped by policy {stamped_by} but the repository belongs to {owner}")
        }
        Finding::EvidenceMissing { missing } => {
            format!("missing: {}; houba will attach it again", missing.summary())
        }
    }
}

/// `Not checked upstream (recheck not due): docker.io 200 tags`: the upstream HEADs that
/// `tags.recheck` saved, when there are any.
pub fn recheck_skipped_line(plan: &Plan) -> Option<String> {
    let parts: Vec<String> = plan
        .requests
        .iter()
        .filter(|(_, r)| r.recheck_skipped > 0)
        .map(|(name, r)| {
            let n = r.recheck_skipped;
            format!("{name} {n} tag{}", if n == 1 { "" } else { "s" })
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "Not checked upstream (recheck not due): {}",
            parts.join("; ")
        )
    })
}
