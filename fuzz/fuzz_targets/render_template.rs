//! Template bytes → rendered with rb's minijinja environment against a fixed context.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rb::fuzzing::render_template(data);
});
