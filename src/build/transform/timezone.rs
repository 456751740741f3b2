//! `setTimezone`: `/etc/localtime` → `/usr/share/zoneinfo/<zone>`, `/etc/timezone`, and `TZ`
//! in the config environment. The zone must exist in the image's own zoneinfo.

use super::Workspace;
use crate::build::error::BuildError;
use crate::build::rootfs::{Entry, EntryKind, Query};

const ZONEINFO: &str = "/usr/share/zoneinfo";
const LOCALTIME: &str = "etc/localtime";
const TIMEZONE: &str = "etc/timezone";

pub(super) fn validate_zone_name(image: &str, zone: &str) -> Result<(), BuildError> {
    let valid = !zone.is_empty()
        && zone.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'))
        });
    if valid {
        Ok(())
    } else {
        Err(BuildError::Step {
            image: image.to_string(),
            step: "setTimezone",
            detail: format!(
                "`{zone}` is not an IANA zone name such as `Europe/Paris`; fix the policy"
            ),
        })
    }
}

pub(super) fn ask(query: &mut Query, zone: &str) {
    query.path(&format!("{ZONEINFO}/{zone}"));
    query.path(LOCALTIME);
    query.path(TIMEZONE);
}

pub(super) fn apply(ws: &mut Workspace<'_>, zone: &str) -> Result<(), String> {
    let zone_path = format!("{ZONEINFO}/{zone}");
    if ws.file(&zone_path)?.is_none() {
        return Err(format!(
            "zone `{zone}` does not exist in this image ({zone_path} is missing or not a file); install tzdata in the base image or fix the zone name"
        ));
    }
    let (localtime, old) = ws.entry_nofollow(LOCALTIME)?;
    let Some(_) = ws.dir(crate::build::rootfs::parent(&localtime))? else {
        return Err("/etc does not exist in this image; it cannot hold /etc/localtime".to_string());
    };
    ws.put(
        localtime,
        Entry {
            kind: EntryKind::Symlink(zone_path),
            mode: 0o777,
            // A replaced symlink keeps its owner; a new one belongs to root.
            uid: old.as_ref().map_or(0, |e| e.uid),
            gid: old.as_ref().map_or(0, |e| e.gid),
        },
    );
    let content = format!("{zone}\n").into_bytes();
    match ws.file(TIMEZONE)? {
        Some(file) => ws.put(
            file.real,
            Entry {
                kind: EntryKind::File(content),
                ..file.entry
            },
        ),
        None => {
            let (real, _) = ws.entry_nofollow(TIMEZONE)?;
            ws.put(
                real,
                Entry {
                    kind: EntryKind::File(content),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
            );
        }
    }
    ws.set_env("TZ", zone);
    Ok(())
}
