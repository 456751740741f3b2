//! Arbitrary bytes as a saved plan file, read back as `houba apply FILE` does, then rendered
//! as `houba show FILE` does (text, JSON and Markdown).
//!
//! Run: `cargo fuzz run plan_file fuzz/corpus/plan_file fuzz/seeds/plan_file`

#![no_main]

use houba::plan::{file, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The plan module reads bytes; the CLI reads the file.
    if let Ok(plan) = file::from_bytes("plan.json", data) {
        for format in [
            render::Format::Text,
            render::Format::Json,
            render::Format::Markdown,
        ] {
            let _ = render::render(&plan, format, render::Style { color: false });
        }
    }
});
