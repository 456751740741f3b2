//! Images shared by the fixture tests.

use std::path::Path;

use houba::build::layout::LayoutDir;
use houba::build::{BuildError, BuiltImage, rebuild_image};
use houba::policy::resolved::TransformStep;

use super::{Compression, Node, StoredImage, annotations, fake_pem, rosters, store_image};

pub fn all_steps() -> Vec<TransformStep> {
    vec![
        TransformStep::InjectCa {
            certs: vec!["corp-root".into()],
        },
        TransformStep::RewritePackageSources {
            mirror: "internal".into(),
            managers: vec![],
        },
        TransformStep::SetTimezone {
            zone: "Asia/Tokyo".into(),
        },
    ]
}

pub fn alpine_like(layout: &LayoutDir, compression: Compression) -> StoredImage {
    use Node::*;
    store_image(
        layout,
        "alpine",
        vec![
            (
                vec![
                    Dir("etc", 0o755),
                    Dir("etc/apk", 0o755),
                    File(
                        "etc/apk/repositories",
                        "https://dl-cdn.alpinelinux.org/alpine/v3.20/main\nhttps://dl-cdn.alpinelinux.org/alpine/v3.20/community\n",
                        0o644,
                    ),
                    Dir("etc/ssl", 0o755),
                    Dir("etc/ssl/certs", 0o755),
                    File("etc/ssl/certs/ca-certificates.crt", "BASE BUNDLE\n", 0o644),
                    Symlink("etc/ssl/cert.pem", "certs/ca-certificates.crt"),
                    File("etc/localtime", "UTC TZif", 0o644),
                    Dir("usr", 0o755),
                    OwnedDir("usr/local", 0o775, 7, 8),
                    Dir("usr/local/share", 0o750),
                    Dir("usr/share", 0o755),
                    Dir("usr/share/zoneinfo", 0o755),
                    Dir("usr/share/zoneinfo/Asia", 0o755),
                    File("usr/share/zoneinfo/Asia/Tokyo", "TZif2 JST", 0o644),
                    File("usr/share/zoneinfo/Europe", "not a dir", 0o644),
                ],
                compression,
            ),
            // An upper layer that deletes a zone and replaces a directory with an opaque one.
            (
                vec![
                    Dir("usr/share/zoneinfo", 0o755),
                    Whiteout("usr/share/zoneinfo/Europe"),
                    Dir("etc/apk", 0o700),
                    Opaque("etc/apk"),
                    File(
                        "etc/apk/repositories",
                        "# upper\nhttps://dl-cdn.alpinelinux.org/alpine/edge/main\n",
                        0o600,
                    ),
                ],
                compression,
            ),
        ],
        false,
    )
}

pub fn rebuild(
    layout: &LayoutDir,
    image: &StoredImage,
    steps: &[TransformStep],
    work: &Path,
) -> Result<BuiltImage, BuildError> {
    rebuild_image(
        "registry.test/alpine:3.20",
        &image.manifest,
        &image.config,
        layout,
        steps,
        &rosters(&fake_pem(1)),
        &annotations(),
        work,
    )
}
