use super::*;

fn inventory() -> Inventory {
    let files = MergedFiles {
        files: [
            (
                "etc/os-release".to_owned(),
                collector::Found::File(b"ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n".to_vec()),
            ),
            (
                collector::DPKG_STATUS.to_owned(),
                collector::Found::File(
                    b"Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n\nPackage: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\n".to_vec(),
                ),
            ),
        ]
        .into(),
    };
    packages::inventory(&files).unwrap()
}

fn subject() -> Subject {
    Subject {
        name: "registry.test/demo/debian".into(),
        digest: crate::registry::digest::sha256_digest(b"image"),
        created: "2024-05-01T10:00:00Z".into(),
    }
}

#[test]
fn purls_follow_the_purl_spec_and_syft() {
    let inv = inventory();
    assert_eq!(inv.packages[0].name, "base-files", "sorted");
    assert_eq!(
        purl(&inv.packages[0], inv.distro.as_ref()).unwrap(),
        "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12"
    );
    assert_eq!(
        purl(&inv.packages[1], inv.distro.as_ref()).unwrap(),
        "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"
    );
    let rpm = Package {
        ecosystem: Ecosystem::Rpm,
        name: "bash".into(),
        version: "1:5.1.8-9.el9".into(),
        arch: Some("x86_64".into()),
        license: None,
        source: None,
        supplier: None,
        epoch: Some(1),
    };
    let rhel = Distro {
        id: "rhel".into(),
        version_id: Some("9.4".into()),
        pretty_name: None,
    };
    assert_eq!(
        purl(&rpm, Some(&rhel)).unwrap(),
        "pkg:rpm/redhat/bash@5.1.8-9.el9?arch=x86_64&distro=rhel-9.4&epoch=1"
    );
}

#[test]
fn documents_are_byte_deterministic_and_name_the_digest() {
    let inv = inventory();
    for format in SbomFormat::ALL {
        let a = render(format, &subject(), &inv).unwrap();
        assert_eq!(a, render(format, &subject(), &inv).unwrap());
        let value: serde_json::Value = serde_json::from_slice(&a).unwrap();
        let text = String::from_utf8(a).unwrap();
        assert!(text.contains(&subject().digest), "{format:?}");
        assert!(text.contains("2024-05-01T10:00:00Z"));
        match format {
            SbomFormat::Spdx => {
                assert_eq!(value["spdxVersion"], "SPDX-2.3");
                assert_eq!(value["packages"].as_array().unwrap().len(), 4);
            }
            SbomFormat::Cyclonedx => {
                assert_eq!(value["specVersion"], "1.6");
                assert_eq!(value["components"].as_array().unwrap().len(), 3);
            }
        }
    }
    let mut other = subject();
    other.digest = crate::registry::digest::sha256_digest(b"other");
    assert_ne!(
        render(SbomFormat::Cyclonedx, &subject(), &inv).unwrap(),
        render(SbomFormat::Cyclonedx, &other, &inv).unwrap()
    );
}

#[test]
fn creation_time_comes_from_the_config_or_the_epoch() {
    assert_eq!(
        Subject::created_from_config(br#"{"created":"2024-05-01T10:00:00.123456789+02:00"}"#),
        "2024-05-01T08:00:00Z"
    );
    assert_eq!(Subject::created_from_config(b"{}"), EPOCH);
    assert_eq!(Subject::created_from_config(b"garbage"), EPOCH);
}
