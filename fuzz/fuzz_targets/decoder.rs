//! The storage decoders: any bytes as an entry or a chunk give a value or
//! an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = annals::fuzz::decode_entry(1, data);
    let _ = annals::fuzz::decode_chunk(1, data);
});
