//! Bytes → a params file, `-p` pairs and a secret file's value, resolved against typed params.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rb::fuzzing::read_params(data);
});
