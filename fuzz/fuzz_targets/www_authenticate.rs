//! Arbitrary text as a `WWW-Authenticate` challenge (Basic, Bearer with realm, service and
//! scope parameters, quoted or not).
//!
//! Run: `cargo fuzz run www_authenticate fuzz/corpus/www_authenticate fuzz/seeds/www_authenticate`

#![no_main]

use houba::registry::auth::parse_challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_challenge(text);
    }
});
