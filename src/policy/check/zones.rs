//! The IANA time zone names, embedded: `setTimezone` is checked at validation without
//! depending on the validating machine's `/usr/share/zoneinfo` (a CI runner or a distroless
//! image may have none).

use std::collections::BTreeSet;
use std::sync::LazyLock;

/// The committed list, one name a line (`#` lines are comments).
const ZONES: &str = include_str!("zones.txt");

static NAMES: LazyLock<BTreeSet<&'static str>> = LazyLock::new(|| {
    ZONES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Whether `zone` is an IANA zone or link name (`Europe/Paris`, `UTC`, `US/Eastern`).
pub fn is_known_zone(zone: &str) -> bool {
    NAMES.contains(zone)
}

/// The known zone closest to a misspelt one: by whole name first (`europe/pariss`), else by
/// its last component (`Paris` → `Europe/Paris`, `America/Pariss` → `Europe/Paris`).
pub fn closest_zone(zone: &str) -> Option<&'static str> {
    if let Some(close) = crate::policy::suggest::closest(zone, NAMES.iter().copied()) {
        return Some(close);
    }
    let city = zone.rsplit('/').next().unwrap_or(zone);
    let cities = NAMES.iter().map(|n| n.rsplit('/').next().unwrap_or(n));
    let close_city = crate::policy::suggest::closest(city, cities)?;
    NAMES
        .iter()
        .copied()
        .find(|n| n.rsplit('/').next() == Some(close_city))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_zones() {
        for zone in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "US/Eastern",
        ] {
            assert!(is_known_zone(zone), "{zone}");
        }
        for zone in [
            "Mars/Olympus",
            "Europe Paris",
            "europe/paris",
            "",
            "Europe/",
        ] {
            assert!(!is_known_zone(zone), "{zone}");
        }
        assert_eq!(closest_zone("europe/paris"), Some("Europe/Paris"));
        assert_eq!(closest_zone("Europe/Pariss"), Some("Europe/Paris"));
        assert_eq!(closest_zone("Asia/Tokio"), Some("Asia/Tokyo"));
        assert_eq!(closest_zone("Mars/Olympus"), None);
    }

    /// The embedded list is the Zone and Link names of this machine's `tzdata.zi` when its
    /// tzdata release is the one the list was made from. `UPDATE_ZONES=1` rewrites the list
    /// from the local database (then review and commit it).
    #[test]
    fn the_embedded_list_matches_the_local_zoneinfo() {
        let Ok(zi) = std::fs::read_to_string("/usr/share/zoneinfo/tzdata.zi") else {
            eprintln!("no /usr/share/zoneinfo/tzdata.zi here: nothing to compare with");
            return;
        };
        let version = |text: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix("# version ")
                        .or_else(|| l.split("tzdata ").nth(1))
                })
                .map(|v| v.trim_end_matches('.').trim().to_string())
        };
        let mut local: Vec<&str> = zi
            .lines()
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                match fields.as_slice() {
                    ["Z", name, ..] => Some(*name),
                    ["L", _, name, ..] => Some(*name),
                    _ => None,
                }
            })
            .collect();
        local.sort_unstable();
        local.dedup();
        if std::env::var_os("UPDATE_ZONES").is_some() {
            let release = version(&zi).unwrap_or_default();
            let text = format!(
                "# IANA time zone names (the Zone and Link names of tzdata.zi), tzdata {release}.\n# Regenerate from this machine's zoneinfo: UPDATE_ZONES=1 cargo test --lib policy::check::zones\n{}\n",
                local.join("\n")
            );
            std::fs::write("src/policy/check/zones.txt", text).expect("write the zone list");
            return;
        }
        if version(&zi) != version(ZONES) {
            eprintln!(
                "local tzdata {:?} differs from the embedded list's {:?}: not compared",
                version(&zi),
                version(ZONES)
            );
            return;
        }
        let embedded: Vec<&str> = NAMES.iter().copied().collect();
        assert_eq!(
            embedded, local,
            "src/policy/check/zones.txt is stale: regenerate it with `UPDATE_ZONES=1 cargo test --lib policy::check::zones`"
        );
    }
}
