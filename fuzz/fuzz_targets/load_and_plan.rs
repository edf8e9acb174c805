//! Runbook bytes → load → validate → plan → every plan format.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rb::fuzzing::load_and_plan(data);
});
