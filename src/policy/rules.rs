//! Validators for single values of the policy language. Each returns the parsed value, or a
//! sentence saying what is wrong that callers turn into a diagnostic.

use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;

use super::resolved::{Platform, Recheck};

fn pattern(cell: &'static OnceLock<Regex>, source: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(source).expect("built-in pattern compiles"))
}

/// Policy, import and variant names appear in plan addresses (`policy/import/variant[…]`) and
/// in stamps, so they are restricted to a DNS-label-like alphabet.
pub fn check_name(name: &str) -> Result<(), String> {
    static NAME: OnceLock<Regex> = OnceLock::new();
    if name.len() > 63 {
        return Err(format!("`{name}` is longer than 63 characters"));
    }
    if pattern(&NAME, r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$").is_match(name) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use lowercase letters, digits, `.`, `_` and `-`, \
             starting and ending with a letter or digit"
        ))
    }
}

/// A repository path as the distribution spec allows it: lowercase components separated by
/// `/`, each made of alphanumerics joined by `.`, `_`, `__` or dashes.
pub fn check_repository(path: &str) -> Result<(), String> {
    static COMPONENT: OnceLock<Regex> = OnceLock::new();
    let component = pattern(&COMPONENT, r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$");
    if path.is_empty() {
        return Err("the repository path is empty".into());
    }
    match path.split('/').find(|part| !component.is_match(part)) {
        None => Ok(()),
        Some(part) => Err(format!(
            "`{path}` is not a valid repository path: component `{part}` must be lowercase \
             letters and digits, separated by `.`, `_`, `__` or `-`"
        )),
    }
}

/// A registry host as written in `source.registry`: `host[:port]`, no scheme, no path.
pub fn check_host(host: &str) -> Result<(), String> {
    static HOST: OnceLock<Regex> = OnceLock::new();
    if let Some((scheme, _)) = host.split_once("://") {
        return Err(format!(
            "`{host}` carries a scheme (`{scheme}://`); write the host only"
        ));
    }
    if pattern(
        &HOST,
        r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$",
    )
    .is_match(host)
    {
        Ok(())
    } else {
        Err(format!(
            "`{host}` is not a registry host such as `docker.io` or `ghcr.io`"
        ))
    }
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    static TAG: OnceLock<Regex> = OnceLock::new();
    pattern(&TAG, r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$").is_match(tag)
}

/// Characters a variant suffix may add to a tag.
pub fn check_suffix(suffix: &str) -> Result<(), String> {
    match suffix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        None if suffix.len() <= 64 => Ok(()),
        None => Err(format!("suffix `{suffix}` is longer than 64 characters")),
        Some(c) => Err(format!(
            "suffix `{suffix}` contains `{c}`, which a tag cannot hold"
        )),
    }
}

/// `sha256:<64 lowercase hex>`.
pub fn check_digest(digest: &str) -> Result<(), String> {
    static DIGEST: OnceLock<Regex> = OnceLock::new();
    if pattern(&DIGEST, r"^sha256:[0-9a-f]{64}$").is_match(digest) {
        return Ok(());
    }
    let detail = match digest.split_once(':') {
        None => "it has no `sha256:` prefix".to_string(),
        Some((algorithm, _)) if algorithm != "sha256" => {
            format!("the algorithm is `{algorithm}`, only `sha256` is accepted")
        }
        Some((_, hex)) if hex.len() != 64 => {
            format!("the hex part has {} characters, not 64", hex.len())
        }
        Some(_) => "the hex part must be lowercase `0-9a-f`".to_string(),
    };
    Err(format!("`{digest}` is not a digest: {detail}"))
}

/// A Backstage entity ref, `[kind:][namespace/]name`.
pub fn check_owner(owner: &str) -> Result<(), String> {
    static OWNER: OnceLock<Regex> = OnceLock::new();
    let re = pattern(
        &OWNER,
        r"^(?:[A-Za-z][A-Za-z0-9-]*:)?(?:[A-Za-z0-9][A-Za-z0-9._-]{0,62}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
    );
    if re.is_match(owner) {
        Ok(())
    } else {
        Err(format!(
            "`{owner}` is not an entity ref: expected `[kind:][namespace/]name`, \
             e.g. `group:default/platform` or `user:jdoe`"
        ))
    }
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];
const KNOWN_ARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

/// `os/arch[/variant]` with the GOOS/GOARCH spellings OCI image indexes use.
pub fn parse_platform(text: &str) -> Result<Platform, String> {
    let parts: Vec<&str> = text.split('/').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "`{text}` is not a platform: expected `os/arch` or `os/arch/variant`, e.g. \
             `linux/amd64` or `linux/arm64/v8`"
        ));
    }
    if !KNOWN_OS.contains(&parts[0]) {
        return Err(format!(
            "`{}` is not an OCI os (such as `linux` or `windows`)",
            parts[0]
        ));
    }
    if !KNOWN_ARCH.contains(&parts[1]) {
        let hint = match parts[1] {
            "x86_64" | "x86-64" | "x64" => " (write `amd64`)",
            "aarch64" => " (write `arm64`)",
            "i386" | "i686" | "x86" => " (write `386`)",
            "armhf" | "armv7" | "armv7l" => " (write `arm` with variant `v7`: `linux/arm/v7`)",
            _ => "",
        };
        return Err(format!(
            "`{}` is not an OCI architecture{hint}; known: {}",
            parts[1],
            KNOWN_ARCH.join(", ")
        ));
    }
    if let Some(variant) = parts.get(2)
        && !variant
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(format!(
            "`{variant}` is not a platform variant such as `v7` or `v8`"
        ));
    }
    Ok(Platform {
        os: parts[0].to_string(),
        architecture: parts[1].to_string(),
        variant: parts.get(2).map(|v| v.to_string()),
    })
}

/// A settle duration: `0`, or a sequence of `<number><unit>` with units `s`, `m`, `h`, `d`
/// (`30m`, `24h`, `1h30m`, `7d`).
pub fn parse_settle(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration: write a number followed by a unit, `s`, `m`, `h` or \
             `d` (e.g. `30m`, `24h`, `1h30m`, `7d`), or `0`"
        )
    };
    let text_trimmed = text.trim();
    if text_trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    if text_trimmed.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text_trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let amount: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = amount
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "`{text}` has no unit after `{digits}`: add `s`, `m`, `h` or `d`"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// A recheck rule: `always`, `never`, or a duration in the `settle` syntax other than `0`
/// (`30m`, `24h`, `1h30m`, `7d`).
pub fn parse_recheck(text: &str) -> Result<Recheck, String> {
    let bad = || {
        format!(
            "`{text}` is not a recheck rule: write `always`, `never`, or a duration such as \
             `30m`, `24h`, `1h30m` or `7d` (units `s`, `m`, `h`, `d`)"
        )
    };
    match text.trim() {
        "always" => Ok(Recheck::Always),
        "never" => Ok(Recheck::Never),
        "" => Err(bad()),
        t if t.starts_with(|c: char| c.is_ascii_digit()) => match parse_settle(t) {
            Ok(d) if d.is_zero() => Err(format!(
                "`{text}` would recheck on every run: write `always` for that"
            )),
            Ok(d) => Ok(Recheck::Every(d)),
            // "no unit" and "too long" say exactly what to fix; anything else is the general
            // sentence (the settle one would offer `0`, which is refused here).
            Err(problem) if !problem.contains("is not a duration") => Err(problem),
            Err(_) => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// A semver range, with a leading `v` tolerated on versions (`>=v1.2`). Returns the range
/// normalised without the `v`, so later stages can parse it with `semver::VersionReq`.
pub fn normalise_semver_range(range: &str) -> Result<String, String> {
    let normalised = range
        .split(',')
        .map(|comparator| {
            let comparator = comparator.trim();
            let operator_len = comparator
                .find(|c: char| !matches!(c, '>' | '<' | '=' | '~' | '^' | ' '))
                .unwrap_or(comparator.len());
            let (operator, version) = comparator.split_at(operator_len);
            let version = match version.strip_prefix(['v', 'V']) {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
                _ => version,
            };
            format!("{}{version}", operator.trim())
        })
        .collect::<Vec<_>>()
        .join(", ");
    match semver::VersionReq::parse(&normalised) {
        Ok(_) => Ok(normalised),
        Err(error) => Err(format!("`{range}` is not a semver range: {error}")),
    }
}

/// The placeholders of an alias template (`{major}.{minor}` → `major`, `minor`), after
/// checking that the literal text around them can be part of a tag.
pub fn alias_placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut placeholders = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        check_alias_literal(template, &rest[..open])?;
        if rest[open..].starts_with('}') {
            return Err(format!(
                "alias `{template}` has a `}}` without a matching `{{`"
            ));
        }
        let after = &rest[open + 1..];
        let close = after
            .find(['{', '}'])
            .filter(|i| after[*i..].starts_with('}'))
            .ok_or_else(|| format!("alias `{template}` has a `{{` without a matching `}}`"))?;
        let name = &after[..close];
        if name.is_empty() {
            return Err(format!(
                "alias `{template}` has an empty placeholder `{{}}`"
            ));
        }
        placeholders.push(name);
        rest = &after[close + 1..];
    }
    check_alias_literal(template, rest)?;
    if placeholders.is_empty() && !is_tag(template) {
        return Err(format!("alias `{template}` is not a valid tag"));
    }
    Ok(placeholders)
}

fn check_alias_literal(template: &str, literal: &str) -> Result<(), String> {
    match literal
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        None => Ok(()),
        Some(c) => Err(format!(
            "alias `{template}` contains `{c}`, which a tag cannot hold"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_repositories() {
        assert!(check_name("busybox").is_ok());
        assert!(check_name("debian-tz.v2").is_ok());
        assert!(check_name("Busybox").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_repository("library/busybox").is_ok());
        assert!(check_repository("a__b/c-d--e").is_ok());
        assert!(check_repository("Library/busybox").is_err());
        assert!(check_repository("a//b").is_err());
        assert!(check_host("registry.local:5000").is_ok());
        assert!(check_host("https://docker.io").is_err());
    }

    #[test]
    fn digests_owners_platforms() {
        let hex = "a".repeat(64);
        assert!(check_digest(&format!("sha256:{hex}")).is_ok());
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(check_digest("sha512:abc").unwrap_err().contains("sha512"));
        assert!(check_owner("group:default/platform").is_ok());
        assert!(check_owner("jdoe").is_ok());
        assert!(check_owner("user:").is_err());
        assert!(check_owner("group:a/b/c").is_err());
        assert_eq!(
            parse_platform("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(
            parse_platform("linux/x86_64")
                .unwrap_err()
                .contains("amd64")
        );
        assert!(parse_platform("linux").is_err());
    }

    #[test]
    fn recheck_rules() {
        assert_eq!(parse_recheck("always").unwrap(), Recheck::Always);
        assert_eq!(parse_recheck("never").unwrap(), Recheck::Never);
        assert_eq!(
            parse_recheck("24h").unwrap(),
            Recheck::Every(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_recheck("1h30m").unwrap(),
            Recheck::Every(Duration::from_secs(5400))
        );
        assert!(
            parse_recheck("sometimes")
                .unwrap_err()
                .contains("`always`, `never`")
        );
        assert!(parse_recheck("Never").is_err());
        assert!(parse_recheck("").is_err());
        assert!(parse_recheck("0").unwrap_err().contains("write `always`"));
        assert!(parse_recheck("24").unwrap_err().contains("no unit"));
        assert!(
            parse_recheck("1w")
                .unwrap_err()
                .contains("is not a recheck rule")
        );
    }

    #[test]
    fn a_resolved_recheck_round_trips_through_its_serialised_form() {
        for r in [
            Recheck::Always,
            Recheck::Never,
            Recheck::Every(Duration::from_secs(5400)),
        ] {
            let text = serde_json::to_value(r).unwrap();
            assert_eq!(serde_json::from_value::<Recheck>(text).unwrap(), r);
        }
        assert_eq!(
            serde_json::to_value(Recheck::Every(Duration::from_secs(86_400))).unwrap(),
            "86400s"
        );
    }

    #[test]
    fn a_recheck_is_due_once_its_window_has_passed() {
        let day = Recheck::Every(Duration::from_secs(86_400));
        assert!(!day.due(1_000, 1_000 + 86_399));
        assert!(day.due(1_000, 1_000 + 86_400));
        assert!(
            day.due(2_000, 1_000),
            "a check recorded in the future is due"
        );
        assert!(!Recheck::Never.due(1_000, u64::MAX));
        assert!(Recheck::Never.due(2_000, 1_000));
        assert!(Recheck::Always.due(1_000, 1_000));
    }

    #[test]
    fn settle_durations() {
        assert_eq!(parse_settle("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_settle("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_settle("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_settle("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_settle("24").unwrap_err().contains("no unit"));
        assert!(parse_settle("1w").is_err());
        assert!(parse_settle("h").is_err());
        assert!(parse_settle("99999999999999999999d").is_err());
    }

    #[test]
    fn semver_ranges_tolerate_a_leading_v() {
        assert_eq!(normalise_semver_range(">=v1.36, <2").unwrap(), ">=1.36, <2");
        assert_eq!(normalise_semver_range("^1.2").unwrap(), "^1.2");
        assert!(normalise_semver_range(">=1.x.y.z").is_err());
        assert!(normalise_semver_range("latest").is_err());
    }

    #[test]
    fn alias_templates() {
        assert_eq!(
            alias_placeholders("{major}.{minor}").unwrap(),
            vec!["major", "minor"]
        );
        assert!(alias_placeholders("latest").unwrap().is_empty());
        assert!(alias_placeholders("{major").is_err());
        assert!(alias_placeholders("major}").is_err());
        assert!(alias_placeholders("{}").is_err());
        assert!(alias_placeholders("a b").is_err());
        assert!(alias_placeholders("{a{b}}").is_err());
    }
}
