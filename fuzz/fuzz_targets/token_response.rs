//! Arbitrary bytes as a token server's answer (`token` / `access_token`, `expires_in`).
//!
//! Run: `cargo fuzz run token_response fuzz/corpus/token_response fuzz/seeds/token_response`

#![no_main]

use houba::registry::auth::parse_token_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((token, lifetime)) = parse_token_response(data) {
        assert!(!token.is_empty());
        // The lifetime is added to the clock: it must never overflow it.
        let _ = std::time::Instant::now() + lifetime;
    }
});
