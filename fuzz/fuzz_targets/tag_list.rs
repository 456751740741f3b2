//! Arbitrary bytes as a tag-list or catalog page and as a `Link` header naming the next page.
//!
//! Run: `cargo fuzz run tag_list fuzz/corpus/tag_list fuzz/seeds/tag_list`

#![no_main]

use houba::registry::http::{next_link_of, parse_listing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_listing(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = next_link_of(text);
    }
});
