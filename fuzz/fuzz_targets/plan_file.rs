//! Arbitrary bytes as a saved plan file, read back as `houba apply FILE` does, then rendered
//! as `houba show FILE` does (text, JSON and Markdown).
//!
//! Run: `cargo fuzz run plan_file fuzz/corpus/plan_file fuzz/seeds/plan_file`

#![no_main]

use std::sync::OnceLock;

use houba::plan::{file, render};
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch().path().join("plan.json");
    std::fs::write(&path, data).expect("write the plan file");
    if let Ok(plan) = file::load(&path) {
        for format in [
            render::Format::Text,
            render::Format::Json,
            render::Format::Markdown,
        ] {
            let _ = render::render(&plan, format, render::Style { color: false });
        }
    }
});
