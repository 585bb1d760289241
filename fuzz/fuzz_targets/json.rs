//! The interchange parser: any bytes give an event or an error. A parsed
//! event printed and parsed again is the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(event) = annals::parse_event(text) {
            let line = annals::event_to_line(&event, None);
            assert_eq!(annals::parse_event(&line).ok(), Some(event));
        }
    }
});
