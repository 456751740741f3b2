//! SPDX 2.3 JSON through the `spdx-rs` document model.

use spdx_rs::models::{
    Algorithm, Checksum, CreationInfo, DocumentCreationInformation, ExternalPackageReference,
    ExternalPackageReferenceCategory, PackageInformation, PrimaryPackagePurpose, Relationship,
    RelationshipType, SPDX,
};

use super::{Inventory, Subject, package_key, purl};

const IMAGE_ID: &str = "SPDXRef-image";

/// A declared licence that is a valid SPDX expression of listed licences, else `None` (the
/// raw text then goes into the licence comment: no guessing what `GPLv2+` means).
pub(crate) fn spdx_expression(text: &str) -> Option<String> {
    let expression = ::spdx::Expression::parse(text).ok()?;
    // A `LicenseRef-` names a licence text the document would have to carry; it has none.
    let listed = expression
        .requirements()
        .all(|r| matches!(r.req.license, ::spdx::LicenseItem::Spdx { .. }));
    listed.then(|| text.to_owned())
}

pub(super) fn render(subject: &Subject, inventory: &Inventory) -> Result<Vec<u8>, String> {
    let created = chrono::DateTime::parse_from_rfc3339(&subject.created)
        .map_err(|e| format!("creation time {}: {e}", subject.created))?
        .with_timezone(&chrono::Utc);
    let hex = subject.digest.trim_start_matches("sha256:");
    let mut document = SPDX {
        document_creation_information: DocumentCreationInformation {
            spdx_version: "SPDX-2.3".to_owned(),
            document_name: format!("{}@{}", subject.name, subject.digest),
            spdx_document_namespace: format!("urn:houba:spdx:{}@{}", subject.name, subject.digest),
            creation_info: CreationInfo {
                license_list_version: None,
                creators: vec![format!("Tool: houba-{}", env!("CARGO_PKG_VERSION"))],
                created,
                creator_comment: None,
            },
            ..DocumentCreationInformation::default()
        },
        package_information: Vec::new(),
        other_licensing_information_detected: Vec::new(),
        file_information: Vec::new(),
        snippet_information: Vec::new(),
        relationships: Vec::new(),
        annotations: Vec::new(),
        spdx_ref_counter: 0,
    };
    document.package_information.push(PackageInformation {
        package_name: subject.name.clone(),
        package_spdx_identifier: IMAGE_ID.to_owned(),
        package_version: Some(subject.digest.clone()),
        package_download_location: "NOASSERTION".to_owned(),
        files_analyzed: Some(false),
        package_checksum: vec![Checksum::new(Algorithm::SHA256, hex)],
        primary_package_purpose: Some(PrimaryPackagePurpose::Container),
        ..PackageInformation::default()
    });
    document.relationships.push(Relationship::new(
        "SPDXRef-DOCUMENT",
        IMAGE_ID,
        RelationshipType::Describes,
        None,
    ));
    let distro = inventory.distro.as_ref();
    if let Some(d) = distro {
        document.package_information.push(PackageInformation {
            package_name: d.id.clone(),
            package_spdx_identifier: "SPDXRef-os".to_owned(),
            package_version: d.version_id.clone(),
            package_download_location: "NOASSERTION".to_owned(),
            files_analyzed: Some(false),
            package_summary_description: d.pretty_name.clone(),
            // spdx-rs spells this purpose `OPERATING_SYSTEM`, SPDX 2.3 `OPERATING-SYSTEM`:
            // leaving it out keeps the document valid; the SPDXID says what it is.
            ..PackageInformation::default()
        });
        document.relationships.push(Relationship::new(
            IMAGE_ID,
            "SPDXRef-os",
            RelationshipType::Contains,
            None,
        ));
    }
    for package in &inventory.packages {
        let id = format!(
            "SPDXRef-Package-{}-{}",
            package.ecosystem.purl_type(),
            package_key(package)
        );
        let declared = package.license.as_deref().and_then(spdx_expression);
        let declared_expression = declared
            .as_deref()
            .map(spdx_rs::models::SpdxExpression::parse)
            .transpose()
            .map_err(|e| format!("licence of {}: {e}", package.name))?;
        let comment = match (&package.license, &declared) {
            (Some(raw), None) => Some(format!("declared by the package database as: {raw}")),
            _ => None,
        };
        document.package_information.push(PackageInformation {
            package_name: package.name.clone(),
            package_spdx_identifier: id.clone(),
            package_version: Some(package.version.clone()),
            package_download_location: "NOASSERTION".to_owned(),
            files_analyzed: Some(false),
            source_information: package
                .source
                .as_ref()
                .map(|s| format!("built from source package {s}")),
            declared_license: declared_expression,
            comments_on_license: comment,
            external_reference: purl(package, distro)
                .map(|p| ExternalPackageReference {
                    reference_category: ExternalPackageReferenceCategory::PackageManager,
                    reference_type: "purl".to_owned(),
                    reference_locator: p,
                    reference_comment: None,
                })
                .into_iter()
                .collect(),
            primary_package_purpose: Some(PrimaryPackagePurpose::Library),
            ..PackageInformation::default()
        });
        document.relationships.push(Relationship::new(
            IMAGE_ID,
            &id,
            RelationshipType::Contains,
            None,
        ));
    }
    serde_json::to_vec_pretty(&document).map_err(|e| e.to_string())
}
