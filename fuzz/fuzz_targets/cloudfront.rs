#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cdn_task_exporter::fuzzing::cloudfront(data));
