//! Arbitrary bytes as a policy file, through the same code path as `load_policies`: parse,
//! structural check, rules, defaults merge, cross-policy checks, diagnostic rendering.
//!
//! Run: `cargo fuzz run load_policy fuzz/corpus/load_policy fuzz/seeds/load_policy`

#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;

use houba::config::{
    CaSource, LogFormat, PackageMirror, RegistryEndpoint, RegistryEntry, Settings,
};
use houba::policy::load_policy_source;
use libfuzzer_sys::fuzz_target;

fn settings() -> Settings {
    let local = RegistryEntry {
        name: "local".into(),
        endpoint: RegistryEndpoint::Layout {
            path: PathBuf::from("layout"),
        },
        mirror_of: None,
        concurrency: 1,
    };
    Settings {
        config_file: None,
        policies: Vec::new(),
        registries: BTreeMap::from([("local".to_string(), local)]),
        ca_certs: BTreeMap::from([("corporate-root".to_string(), CaSource::Pem(String::new()))]),
        package_mirrors: BTreeMap::from([("internal".to_string(), PackageMirror::default())]),
        log_format: LogFormat::Text,
        label_prefix: "io.houba".into(),
        concurrency: 1,
        max_prune_fraction: 0.5,
        // Fields added later take their defaults, so the target keeps compiling.
        ..Settings::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let outcome = load_policy_source("fuzz.yaml", text, &settings());
    // Rendering walks the spans against the source: out-of-range spans would panic here.
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::none());
    for diagnostic in &outcome.diagnostics {
        let mut rendered = String::new();
        let _ = handler.render_report(&mut rendered, diagnostic);
    }
});
