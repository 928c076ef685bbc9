#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tuisong_fuzz::send(data));
