//! `injectCA`: append the roster's certificates to the distribution's CA bundle and drop each
//! one in its anchor directory, so that a later `update-ca-certificates` /
//! `update-ca-trust` keeps it.

use base64::Engine as _;

use super::Workspace;
use crate::build::TransformRosters;
use crate::build::error::BuildError;
use crate::build::rootfs::{Entry, EntryKind, Query, join};
use crate::config::CaSource;

/// Bundles, by family. The anchor directory and file extension go with the family: the
/// distribution's own tool regenerates the bundle from there.
struct Family {
    bundles: &'static [&'static str],
    anchor_dir: &'static str,
    anchor_ext: &'static str,
}

const FAMILIES: &[Family] = &[
    // Debian, Ubuntu, Alpine (`/etc/ssl/cert.pem` links to the same bundle on Alpine).
    Family {
        bundles: &["/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/cert.pem"],
        anchor_dir: "/usr/local/share/ca-certificates",
        anchor_ext: "crt",
    },
    // RHEL, UBI, Fedora, CentOS, Amazon Linux.
    Family {
        bundles: &[
            "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ],
        anchor_dir: "/etc/pki/ca-trust/source/anchors",
        anchor_ext: "pem",
    },
];

/// A certificate from the roster, validated and normalised (PEM blocks only, base64 wrapped
/// at 64 columns, `\n` line ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaCert {
    pub name: String,
    pub pem: String,
}

pub(super) fn resolve(
    image: &str,
    name: &str,
    rosters: &TransformRosters,
) -> Result<CaCert, BuildError> {
    let invalid = |reason: String| BuildError::InvalidCertificate {
        image: image.to_string(),
        cert: name.to_string(),
        reason,
    };
    let source = rosters
        .ca_certs
        .get(name)
        .ok_or_else(|| BuildError::UnknownRosterEntry {
            image: image.to_string(),
            step: "injectCA",
            roster: "ca_certs",
            name: name.to_string(),
        })?;
    let text = match source {
        CaSource::Pem(pem) => pem.clone(),
        CaSource::Path(path) => std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?,
    };
    let pem = parse_pem_certificates(&text).map_err(invalid)?;
    Ok(CaCert {
        name: name.to_string(),
        pem,
    })
}

/// Checks that `text` holds one or more PEM `CERTIFICATE` blocks whose body is base64 DER
/// starting with an ASN.1 SEQUENCE spanning the whole body, and returns them normalised.
/// Text outside the blocks (comments, `subject=` lines) is dropped.
pub(crate) fn parse_pem_certificates(text: &str) -> Result<String, String> {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    let mut out = String::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    let mut count = 0;
    while let Some((line_no, line)) = lines.next() {
        let Some(label) = line.strip_prefix(BEGIN) else {
            if line.starts_with(END) {
                return Err(format!("line {line_no}: END line without a BEGIN line"));
            }
            continue;
        };
        let label = label.trim_end_matches('-');
        if label != "CERTIFICATE" {
            return Err(format!(
                "line {line_no}: a `{label}` block where a CERTIFICATE was expected"
            ));
        }
        count += 1;
        let mut body = String::new();
        let mut closed = false;
        for (line_no, line) in lines.by_ref() {
            if let Some(end) = line.strip_prefix(END) {
                if end.trim_end_matches('-') != "CERTIFICATE" {
                    return Err(format!(
                        "line {line_no}: certificate #{count} ends with `{line}`"
                    ));
                }
                closed = true;
                break;
            }
            if line.starts_with(BEGIN) {
                return Err(format!(
                    "line {line_no}: certificate #{count} has no END CERTIFICATE line"
                ));
            }
            body.push_str(line);
        }
        if !closed {
            return Err(format!("certificate #{count} has no END CERTIFICATE line"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("certificate #{count}: body is not valid base64 ({e})"))?;
        check_der_sequence(&der).map_err(|e| format!("certificate #{count}: {e}"))?;
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(&der);
        for chunk in encoded.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    if count == 0 {
        return Err("no `-----BEGIN CERTIFICATE-----` block found".to_string());
    }
    Ok(out)
}

/// A DER certificate is one ASN.1 SEQUENCE whose length covers exactly the decoded bytes.
fn check_der_sequence(der: &[u8]) -> Result<(), String> {
    let (&tag, rest) = der.split_first().ok_or("empty DER body")?;
    if tag != 0x30 {
        return Err(format!(
            "DER does not start with an ASN.1 SEQUENCE (tag 0x{tag:02x})"
        ));
    }
    let (&first, rest) = rest.split_first().ok_or("truncated DER length")?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err("invalid DER length".to_string());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    if header + len != der.len() {
        return Err(format!(
            "DER SEQUENCE claims {len} bytes but {} follow its header (truncated or trailing data)",
            der.len() - header
        ));
    }
    Ok(())
}

/// File names in anchor directories: the roster name, restricted to safe characters.
pub(crate) fn anchor_file_name(name: &str, ext: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.{ext}", safe.trim_start_matches('.'))
}

pub(super) fn ask(query: &mut Query) {
    for family in FAMILIES {
        for bundle in family.bundles {
            query.path(bundle);
        }
        query.path(family.anchor_dir);
    }
}

pub(super) fn apply(ws: &mut Workspace<'_>, certs: &[CaCert]) -> Result<(), String> {
    let addition: String = certs.iter().map(|c| c.pem.as_str()).collect();
    let mut updated: Vec<String> = Vec::new();
    for family in FAMILIES {
        let mut family_found = false;
        for bundle in family.bundles {
            let Some(file) = ws.file(bundle)? else {
                continue;
            };
            family_found = true;
            // Two names for one bundle (a symlink, or a hardlink read twice) are updated once.
            if updated.contains(&file.real) {
                continue;
            }
            let mut data = file.data;
            if !data.is_empty() && !data.ends_with(b"\n") {
                data.push(b'\n');
            }
            data.extend_from_slice(addition.as_bytes());
            ws.put(
                file.real.clone(),
                Entry {
                    kind: EntryKind::File(data),
                    ..file.entry
                },
            );
            updated.push(file.real);
        }
        if family_found {
            let dir = ws.ensure_dir(family.anchor_dir.trim_start_matches('/'))?;
            for cert in certs {
                let path = join(&dir, &anchor_file_name(&cert.name, family.anchor_ext));
                ws.put(
                    path,
                    Entry {
                        kind: EntryKind::File(cert.pem.clone().into_bytes()),
                        mode: 0o644,
                        uid: 0,
                        gid: 0,
                    },
                );
            }
        }
    }
    if updated.is_empty() {
        let looked: Vec<&str> = FAMILIES
            .iter()
            .flat_map(|f| f.bundles.iter().copied())
            .collect();
        return Err(format!(
            "no CA bundle found (looked for {}); this image has no CA store to extend, drop injectCA from its transforms or use a base image that ships ca-certificates",
            looked.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_of(der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n")
    }

    #[test]
    fn accepts_a_sequence_and_rejects_broken_framing_or_der() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x05];
        let normalised = parse_pem_certificates(&format!("subject=x\n{}", pem_of(&der))).unwrap();
        assert_eq!(normalised, pem_of(&der));

        let err = parse_pem_certificates("hello").unwrap_err();
        assert!(err.contains("no `-----BEGIN CERTIFICATE-----`"), "{err}");
        let err = parse_pem_certificates(&pem_of(&[0x31, 0x00])).unwrap_err();
        assert!(err.contains("ASN.1 SEQUENCE"), "{err}");
        let err = parse_pem_certificates(&pem_of(&[0x30, 0x05, 0x01])).unwrap_err();
        assert!(err.contains("claims 5 bytes"), "{err}");
        let err = parse_pem_certificates(
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err();
        assert!(err.contains("not valid base64"), "{err}");
        let err = parse_pem_certificates(
            "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(err.contains("PRIVATE KEY"), "{err}");
        let err = parse_pem_certificates("-----BEGIN CERTIFICATE-----\nMAA=\n").unwrap_err();
        assert!(err.contains("no END CERTIFICATE"), "{err}");
    }

    #[test]
    fn anchor_names_are_safe_file_names() {
        assert_eq!(
            anchor_file_name("corp root/2024", "crt"),
            "corp_root_2024.crt"
        );
        assert_eq!(anchor_file_name("../x", "pem"), "_x.pem");
    }
}
