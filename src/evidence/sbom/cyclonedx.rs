//! CycloneDX 1.6 JSON. The `cyclonedx-bom` crate models specifications up to 1.5 only, so
//! the 1.6 document is written through the typed structs below (the subset houba fills in,
//! field names as the 1.6 schema spells them).

use serde::Serialize;

use super::spdx::spdx_expression;
use super::{Inventory, Subject, package_key, purl};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata,
    components: Vec<Component>,
    dependencies: Vec<Dependency>,
}

#[derive(Serialize)]
struct Metadata {
    timestamp: String,
    tools: Tools,
    component: Component,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<Component>,
}

#[derive(Serialize, Default)]
struct Component {
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<License>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

/// The schema's licence choice: one SPDX expression, or named licences.
#[derive(Serialize)]
#[serde(untagged)]
enum License {
    Expression { expression: String },
    Named { license: NamedLicense },
}

#[derive(Serialize)]
struct NamedLicense {
    name: String,
}

#[derive(Serialize)]
struct Property {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    reference: String,
    depends_on: Vec<String>,
}

/// A name-based UUID (version 5 layout) from the described digest: the same image always
/// gets the same serial number, and two images never share one.
fn serial_number(digest: &str) -> String {
    let hash =
        crate::registry::digest::sha256_digest(format!("houba cyclonedx {digest}").as_bytes());
    let mut bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hash[7 + 2 * i..9 + 2 * i], 16).unwrap_or(0))
        .collect();
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub(super) fn render(subject: &Subject, inventory: &Inventory) -> Result<Vec<u8>, String> {
    let image_ref = "image".to_owned();
    let distro = inventory.distro.as_ref();
    let mut components = Vec::new();
    if let Some(d) = distro {
        components.push(Component {
            bom_ref: Some("os".to_owned()),
            kind: "operating-system",
            name: d.id.clone(),
            version: d.version_id.clone(),
            description: d.pretty_name.clone(),
            ..Component::default()
        });
    }
    for package in &inventory.packages {
        let licenses = match package.license.as_deref() {
            Some(raw) => match spdx_expression(raw) {
                Some(expression) => vec![License::Expression { expression }],
                None => vec![License::Named {
                    license: NamedLicense {
                        name: raw.to_owned(),
                    },
                }],
            },
            None => Vec::new(),
        };
        let mut properties = Vec::new();
        if let Some(source) = &package.source {
            properties.push(Property {
                name: "houba:package:source",
                value: source.clone(),
            });
        }
        if let Some(arch) = &package.arch {
            properties.push(Property {
                name: "houba:package:arch",
                value: arch.clone(),
            });
        }
        components.push(Component {
            bom_ref: Some(format!(
                "{}-{}",
                package.ecosystem.purl_type(),
                package_key(package)
            )),
            kind: "library",
            name: package.name.clone(),
            version: Some(package.version.clone()),
            licenses,
            purl: purl(package, distro),
            properties,
            ..Component::default()
        });
    }
    let depends_on = components
        .iter()
        .filter_map(|c| c.bom_ref.clone())
        .collect();
    let bom = Bom {
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: serial_number(&subject.digest),
        version: 1,
        metadata: Metadata {
            timestamp: subject.created.clone(),
            tools: Tools {
                components: vec![Component {
                    kind: "application",
                    name: "houba".to_owned(),
                    version: Some(env!("CARGO_PKG_VERSION").to_owned()),
                    ..Component::default()
                }],
            },
            component: Component {
                bom_ref: Some(image_ref.clone()),
                kind: "container",
                name: subject.name.clone(),
                version: Some(subject.digest.clone()),
                hashes: vec![Hash {
                    alg: "SHA-256",
                    content: subject.digest.trim_start_matches("sha256:").to_owned(),
                }],
                ..Component::default()
            },
        },
        components,
        dependencies: vec![Dependency {
            reference: image_ref,
            depends_on,
        }],
    };
    serde_json::to_vec_pretty(&bom).map_err(|e| e.to_string())
}
