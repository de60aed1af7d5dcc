#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pipeline_core::fuzz::pcd01_message(data));
