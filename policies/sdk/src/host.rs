//! What a policy may ask of the host (`rmhost:policy/host`). On wasm32 these call the host;
//! natively (unit tests) they are deterministic stand-ins, so policy logic that reads a
//! setting or logs can be tested with `cargo test`.

use crate::LogLevel;

#[cfg(target_arch = "wasm32")]
use crate::bindings::eviction::rmhost::policy::host as imp;

/// Writes a line to the host's log, tagged with the policy's name (rate-limited and
/// truncated by the host).
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    imp::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[policy {level:?}] {message}");
}

/// Milliseconds on the host's monotonic clock (host start = 0; the trace clock in `sim`).
pub fn now_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return imp::now_ms();
    #[cfg(not(target_arch = "wasm32"))]
    return testing::now_ms();
}

/// A pseudo-random number, seeded per instance by the host (reproducible in `sim`).
pub fn random_u64() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return imp::random_u64();
    #[cfg(not(target_arch = "wasm32"))]
    return testing::random_u64();
}

/// A value from `[policies.NAME.settings]` in the host's config, if set.
pub fn setting(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return imp::setting(key);
    #[cfg(not(target_arch = "wasm32"))]
    return testing::setting(key);
}

/// Native stand-ins for the host functions (per test thread), for unit tests.
pub mod testing {
    #[cfg(not(target_arch = "wasm32"))]
    use std::{cell::RefCell, collections::HashMap, time::Instant};

    #[cfg(not(target_arch = "wasm32"))]
    thread_local! {
        static SETTINGS: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
        static START: Instant = Instant::now();
        static RNG: std::cell::Cell<u64> = const { std::cell::Cell::new(0x9E37_79B9_7F4A_7C15) };
    }

    /// Makes [`crate::setting`]`(key)` return `value` on this thread (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn set_setting(key: &str, value: Option<&str>) {
        SETTINGS.with(|s| match value {
            Some(v) => s.borrow_mut().insert(key.to_owned(), v.to_owned()),
            None => s.borrow_mut().remove(key),
        });
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn setting(key: &str) -> Option<String> {
        SETTINGS.with(|s| s.borrow().get(key).cloned())
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn now_ms() -> u64 {
        START.with(|s| s.elapsed().as_millis() as u64)
    }

    /// xorshift64: deterministic, like the host's per-instance seeding in `sim`.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn random_u64() -> u64 {
        RNG.with(|r| {
            let mut x = r.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            r.set(x);
            x
        })
    }

    #[cfg(all(test, not(target_arch = "wasm32")))]
    mod tests {
        #[test]
        fn native_stand_ins_behave() {
            assert_eq!(crate::setting("k"), None);
            super::set_setting("k", Some("v"));
            assert_eq!(crate::setting("k").as_deref(), Some("v"));
            super::set_setting("k", None);
            assert_eq!(crate::setting("k"), None);
            assert_ne!(crate::random_u64(), crate::random_u64());
            let _ = crate::now_ms();
        }
    }
}
