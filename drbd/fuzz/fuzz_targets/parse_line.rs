//! Arbitrary bytes, split into lines, through the events2 parser and the
//! model. Also checks that a parsed event prints to a line that parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut model = drbd::Cluster::new();
    for line in text.lines() {
        if let Ok(ev) = drbd::parse_line(line) {
            let _ = model.apply(&ev);
            let printed = ev.to_string();
            assert!(drbd::parse_line(&printed).is_ok(), "{printed:?}");
            let _ = drbd::check(&drbd::View::of(
                &model,
                ev.fields.name.as_deref().unwrap_or(""),
                true,
                false,
            ));
        }
    }
});
