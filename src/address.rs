//! Addresses: the stable names of desired artifacts, and the one rule for `--target`.
//!
//! A full address names one artifact, `<policy>/<import>/<variant>[<registry>/<repository>:<tag>]`
//! (`busybox/stable/default[registry.local:5000/demo/busybox:1.37.0]`). A shorter address names
//! everything under it: a policy (`busybox`), an import (`busybox/stable`) or a variant
//! (`busybox/stable/eu`). The same type serves the graph, the plan, `--target`, notes and the
//! JSON output, so an address is parsed and matched in exactly one place.

#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A policy, an import, a variant or one artifact (see the module documentation).
///
/// Addresses order as their text does, so sorted addresses group by policy and import the way
/// a reader scans a plan, and the order is the same in every view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    policy: String,
    import: Option<String>,
    variant: Option<String>,
    /// `<registry>/<repository>:<tag>` as shown to users (the registry's display host).
    reference: Option<String>,
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not an address: {reason} (expected <policy>[/<import>[/<variant>[<registry>/<repository>:<tag>]]])"
)]
pub struct AddressError {
    /// The text that was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '[', ']']) && !s.chars().any(char::is_whitespace)
}

impl Address {
    /// The address of one artifact: a placement or an alias at a destination tag.
    pub fn artifact(
        policy: &str,
        import: &str,
        variant: &str,
        display: &str,
        repository: &str,
        tag: &str,
    ) -> Address {
        Address {
            policy: policy.to_string(),
            import: Some(import.to_string()),
            variant: Some(variant.to_string()),
            reference: Some(format!("{display}/{repository}:{tag}")),
        }
    }

    /// The address of a whole policy.
    pub fn policy(policy: &str) -> Address {
        Address {
            policy: policy.to_string(),
            import: None,
            variant: None,
            reference: None,
        }
    }

    /// The address of one import of a policy.
    pub fn import(policy: &str, import: &str) -> Address {
        Address {
            import: Some(import.to_string()),
            ..Address::policy(policy)
        }
    }

    /// The policy segment.
    pub fn policy_name(&self) -> &str {
        &self.policy
    }

    /// The import segment, when the address has one.
    pub fn import_name(&self) -> Option<&str> {
        self.import.as_deref()
    }

    /// The variant segment, when the address has one.
    pub fn variant_name(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// `<registry>/<repository>:<tag>`, for the address of one artifact.
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// Whether this address names one artifact (all four parts present).
    pub fn is_artifact(&self) -> bool {
        self.reference.is_some()
    }

    /// Whether `self` is `scope` or lies under it: the one target-matching rule, used by
    /// `--target`, the graph and the plan. Matching is by whole segments: `busybox/stab` does
    /// not select `busybox/stable`.
    pub fn is_within(&self, scope: &Address) -> bool {
        fn part(mine: &Option<String>, theirs: &Option<String>) -> bool {
            theirs.is_none() || mine == theirs
        }
        self.policy == scope.policy
            && part(&self.import, &scope.import)
            && part(&self.variant, &scope.variant)
            && part(&self.reference, &scope.reference)
    }

    /// This address cut to its first `depth` segments (1: policy … 4: the full address).
    pub fn truncated(&self, depth: usize) -> Address {
        Address {
            policy: self.policy.clone(),
            import: self.import.clone().filter(|_| depth >= 2),
            variant: self.variant.clone().filter(|_| depth >= 3),
            reference: self.reference.clone().filter(|_| depth >= 4),
        }
    }
}

impl Address {
    /// The bytes of the address's text, without building it: plans sort and key thousands of
    /// addresses, and formatting two strings per comparison was most of the diff's cost.
    fn text_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        fn segment(s: &Option<String>) -> impl Iterator<Item = u8> + '_ {
            s.iter()
                .flat_map(|s| std::iter::once(b'/').chain(s.bytes()))
        }
        self.policy
            .bytes()
            .chain(segment(&self.import))
            .chain(segment(&self.variant))
            .chain(self.reference.iter().flat_map(|r| {
                std::iter::once(b'[')
                    .chain(r.bytes())
                    .chain(std::iter::once(b']'))
            }))
    }
}

impl Ord for Address {
    /// As the texts order (byte-wise, like `String`).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self == other {
            return std::cmp::Ordering::Equal;
        }
        self.text_bytes().cmp(other.text_bytes())
    }
}

impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.policy)?;
        if let Some(i) = &self.import {
            write!(f, "/{i}")?;
        }
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        if let Some(r) = &self.reference {
            write!(f, "[{r}]")?;
        }
        Ok(())
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Address, AddressError> {
        let error = |reason| AddressError {
            input: input.to_string(),
            reason,
        };
        let (path, reference) = match input.split_once('[') {
            Some((path, rest)) => {
                let reference = rest
                    .strip_suffix(']')
                    .ok_or_else(|| error("the `[` is not closed by a final `]`"))?;
                if reference.is_empty() || reference.contains(['[', ']']) {
                    return Err(error(
                        "the part in brackets must be <registry>/<repository>:<tag>",
                    ));
                }
                let (repo, tag) = reference
                    .rsplit_once(':')
                    .ok_or_else(|| error("the part in brackets has no `:<tag>`"))?;
                if !repo.contains('/') || tag.is_empty() || tag.contains('/') {
                    return Err(error(
                        "the part in brackets must be <registry>/<repository>:<tag>",
                    ));
                }
                (path, Some(reference.to_string()))
            }
            None => (input, None),
        };
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() > 3 || !segments.iter().all(|s| valid_segment(s)) {
            return Err(error(
                "it must be at most three non-empty segments separated by `/`",
            ));
        }
        if reference.is_some() && segments.len() != 3 {
            return Err(error(
                "a registry reference needs all of <policy>/<import>/<variant> before it",
            ));
        }
        Ok(Address {
            policy: segments[0].to_string(),
            import: segments.get(1).map(|s| s.to_string()),
            variant: segments.get(2).map(|s| s.to_string()),
            reference,
        })
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Address {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Address".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "<policy>/<import>/<variant>[<registry>/<repository>:<tag>], or a prefix of it ending at a segment",
        })
    }
}

/// The address among `candidates` closest to `wanted`, for "did you mean …?".
pub fn closest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a Address>,
) -> Option<Address> {
    let depth = wanted.split('[').next().unwrap_or("").split('/').count()
        + usize::from(wanted.contains('['));
    let mut scopes: Vec<Address> = candidates.into_iter().map(|a| a.truncated(depth)).collect();
    scopes.sort();
    scopes.dedup();
    let names: Vec<String> = scopes.iter().map(ToString::to_string).collect();
    let best = names.iter().min_by_key(|n| edit_distance(wanted, n))?;
    best.parse().ok()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "busybox/stable/default[registry.local:5000/demo/busybox:1.37.0]";

    #[test]
    fn parse_and_format_round_trip() {
        for text in [FULL, "busybox", "busybox/stable", "busybox/stable/eu"] {
            let a: Address = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
        }
        let a: Address = FULL.parse().unwrap();
        assert_eq!(
            a,
            Address::artifact(
                "busybox",
                "stable",
                "default",
                "registry.local:5000",
                "demo/busybox",
                "1.37.0"
            )
        );
        assert!(a.is_artifact());
        assert_eq!(
            a.reference(),
            Some("registry.local:5000/demo/busybox:1.37.0")
        );
        for bad in [
            "",
            "a//b",
            "a/b/c/d",
            "a/b[x/y:z]",
            "a/b/c[x/y:z",
            "a/b/c[nope]",
            "a b",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_match_on_segment_boundaries() {
        let a: Address = FULL.parse().unwrap();
        for scope in ["busybox", "busybox/stable", "busybox/stable/default", FULL] {
            assert!(a.is_within(&scope.parse().unwrap()), "{scope}");
        }
        for scope in ["busy", "busybox/stab", "busybox/stable/eu", "nginx"] {
            assert!(!a.is_within(&scope.parse().unwrap()), "{scope}");
        }
    }

    #[test]
    fn ordering_groups_by_segment() {
        let mut v: Vec<Address> = ["b/x/default[r/a:1]", "a/y", "a/x/default[r/a:2]", "a"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        let s: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(s, ["a", "a/x/default[r/a:2]", "a/y", "b/x/default[r/a:1]"]);
    }

    #[test]
    fn ordering_is_the_texts_ordering() {
        // Segments that are prefixes of one another, and separators that sort around other
        // characters (`-` < `/` < `0`, `Z` < `[` < `a`).
        let all: Vec<Address> = [
            "a",
            "a-b",
            "a/b",
            "a0",
            "a/b-c",
            "a/b/c",
            "a/b/c[r/x:1]",
            "a/b/c[r/x:1-rc]",
            "a/b/cZ",
            "a/b/ca",
            "a/bb/c[r/x:1]",
            "ab/c/d[r/y:2]",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for x in &all {
            for y in &all {
                assert_eq!(x.cmp(y), x.to_string().cmp(&y.to_string()), "{x} vs {y}");
            }
        }
    }

    #[test]
    fn closest_suggests_at_the_same_depth() {
        let all: Vec<Address> = [FULL, "nginx/all/default[r/nginx:1]"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(closest("busybx", &all).unwrap().to_string(), "busybox");
        assert_eq!(
            closest("busybox/stabel", &all).unwrap().to_string(),
            "busybox/stable"
        );
    }
}
