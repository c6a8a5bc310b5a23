//! Handing batches of items over between threads.

use super::item::Item;

/// Moves `items` to the end of `out` (swapping the vectors when `out` is empty, so nothing is
/// copied) and returns the emptied vector, to be filled again.
pub(super) fn hand_over(out: &mut Vec<Item>, mut items: Vec<Item>) -> Vec<Item> {
    if out.is_empty() {
        std::mem::swap(out, &mut items);
    } else {
        out.append(&mut items);
    }
    items
}
