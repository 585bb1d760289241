//! The fuzzy-time parser: any text gives a point or an error, and a point
//! prints back to text that parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = annals::TimePoint::parse(text) {
            assert_eq!(annals::TimePoint::parse(&p.to_string()).ok(), Some(p));
            assert!(p.end() > p.start);
        }
    }
});
