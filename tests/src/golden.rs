//! Golden files: the node's semihosting report, checked word for word.
//!
//! `MEND_BLESS=1 cargo test -p mend-tests` rewrites them from the current output; review the
//! diff before committing it.

use std::fs;
use std::path::Path;

/// Compares `actual` with `tests/golden/<name>.txt`, or rewrites that file when `MEND_BLESS`
/// is set to `1`.
///
/// # Panics
/// On a mismatch (showing the first differing line), or when the golden file is missing.
pub fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(format!("{name}.txt"));
    if std::env::var("MEND_BLESS").is_ok_and(|v| v == "1") {
        fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
        fs::write(&path, actual).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read golden file {} ({e}); run with MEND_BLESS=1 to create it",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let mut exp = expected.lines();
    let mut act = actual.lines();
    let mut line = 1;
    loop {
        match (exp.next(), act.next()) {
            (Some(e), Some(a)) if e == a => line += 1,
            (e, a) => panic!(
                "{} differs at line {line}:\n  expected: {}\n    actual: {}\n\
                 full output:\n{actual}\n(MEND_BLESS=1 regenerates golden files)",
                path.display(),
                e.unwrap_or("<end of file>"),
                a.unwrap_or("<end of output>"),
            ),
        }
    }
}
