//! Journal bytes → events and damage → the report model of the run.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rb::fuzzing::read_journal(data);
});
