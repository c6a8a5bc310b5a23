//! The node's semihosting report: reading numbers out of it, and masking the figures that
//! depend on the compiler before it is compared with a golden file.

/// Largest RAM the node may use: static RAM plus the measured stack peak.
pub const RAM_BUDGET: u32 = 4 * 1024;

/// Largest RAM of the store-and-forward node (feature `store`).
pub const STORE_RAM_BUDGET: u32 = 8 * 1024;

/// The number after `label` on a line of the console, e.g. `stack peak: 2612 bytes`.
///
/// # Panics
/// If no line starts with `label` followed by a number.
pub fn console_number(console: &str, label: &str) -> u32 {
    console
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{console}"))
}

/// The console with its memory figures replaced by `N`: they change with the compiler
/// version, and [`assert_ram_budget`] checks them against the budget instead.
pub fn mask_memory_figures(console: &str) -> String {
    console
        .lines()
        .map(|l| {
            for label in ["static ram: ", "stack peak: ", "ram total: "] {
                if l.starts_with(label) {
                    return format!("{label}N bytes\n");
                }
            }
            format!("{l}\n")
        })
        .collect()
}

/// Checks the report's `static ram` + `stack peak` against [`RAM_BUDGET`], and returns them.
///
/// # Panics
/// When over budget, when the figures are missing, or when the stack was never measured.
pub fn assert_ram_budget(console: &str) -> (u32, u32) {
    assert_ram_within(console, RAM_BUDGET)
}

/// Checks `static ram` + `stack peak` against `budget` bytes and returns them. The store node
/// reports several times (the stack peak only grows); the last report counts.
///
/// # Panics
/// When over budget, when the figures are missing, or when the stack was never measured.
pub fn assert_ram_within(console: &str, budget: u32) -> (u32, u32) {
    let last = console
        .rfind("static ram: ")
        .map_or(console, |at| &console[at..]);
    let ram = console_number(last, "static ram: ");
    let peak = console_number(last, "stack peak: ");
    assert!(peak > 0, "the stack was never measured");
    assert_eq!(console_number(last, "ram total: "), ram + peak);
    assert!(
        ram + peak <= budget,
        "RAM {ram} + stack {peak} bytes is over the {budget}-byte budget"
    );
    (ram, peak)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str =
        "edge in: 100\nstatic ram: 8 bytes\nstack peak: 2612 bytes\nram total: 2620 bytes\n";

    #[test]
    fn numbers_are_read_by_label() {
        assert_eq!(console_number(REPORT, "edge in: "), 100);
        assert_eq!(assert_ram_budget(REPORT), (8, 2612));
    }

    #[test]
    fn memory_figures_are_masked_and_nothing_else() {
        assert_eq!(
            mask_memory_figures(REPORT),
            "edge in: 100\nstatic ram: N bytes\nstack peak: N bytes\nram total: N bytes\n"
        );
    }

    #[test]
    fn the_last_report_counts() {
        let two =
            format!("{REPORT}static ram: 8 bytes\nstack peak: 5000 bytes\nram total: 5008 bytes\n");
        assert_eq!(assert_ram_within(&two, STORE_RAM_BUDGET), (8, 5000));
    }

    #[test]
    #[should_panic(expected = "over the 8192-byte budget")]
    fn over_the_store_budget_fails() {
        assert_ram_within(
            "static ram: 2000 bytes\nstack peak: 6200 bytes\nram total: 8200 bytes\n",
            STORE_RAM_BUDGET,
        );
    }

    #[test]
    #[should_panic(expected = "over the 4096-byte budget")]
    fn over_budget_fails() {
        assert_ram_budget("static ram: 100 bytes\nstack peak: 4000 bytes\nram total: 4100 bytes\n");
    }
}
