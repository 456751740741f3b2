//! Unit tests.

use super::*;
use crate::registry::RegistryError;

#[test]
fn errors_keep_their_kind() {
    let transport = ApplyError::from(RegistryError::Transport {
        registry: "registry.local:5000".into(),
        message: "connection reset".into(),
    });
    assert!(transport.is_transient());
    assert!(transport.to_string().contains("registry.local:5000"));
    let not_found = ApplyError::from(RegistryError::NotFound {
        registry: "r".into(),
        repository: "demo/busybox".into(),
        reference: "1.37.0".into(),
    });
    assert!(!not_found.is_transient());
    assert!(
        matches!(&not_found, ApplyError::Registry(RegistryError::NotFound { reference, .. }) if reference == "1.37.0")
    );
    let rebuild = ApplyError::Rebuild {
        at: "r/demo/busybox:1.37.0".into(),
        error: crate::rebuild::RebuildError::Registry(RegistryError::Transport {
            registry: "r".into(),
            message: "timed out".into(),
        }),
    };
    assert!(rebuild.is_transient());
    assert!(!ApplyError::from("the tag moved since planning").is_transient());
}
