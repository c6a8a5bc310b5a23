//! The bins a chart keeps: per kind of point, the count, the extremes and the exact sum of
//! the values, so that merging bins (or folding them into pixel columns) loses nothing and
//! does not depend on the order points came in.

/// Count, extremes and exact sum of the values of one kind in one bin or column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stat {
    pub(super) count: u64,
    pub(super) min: i32,
    pub(super) max: i32,
    pub(super) sum: i128,
}

impl Stat {
    pub(super) const EMPTY: Stat = Stat {
        count: 0,
        min: i32::MAX,
        max: i32::MIN,
        sum: 0,
    };

    pub(super) fn add(&mut self, bits: i32) {
        self.count += 1;
        self.min = self.min.min(bits);
        self.max = self.max.max(bits);
        self.sum += i128::from(bits);
    }

    pub(super) fn merge(&mut self, other: &Stat) {
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub(super) const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The mean in °C. Computed from the exact sum, so it is the same for any arrival order.
    pub(super) fn mean(&self) -> f64 {
        self.sum as f64 / self.count as f64 / 256.0
    }
}

/// One [`Stat`] per [`PointKind`](super::PointKind), at its index.
pub(super) type Bin = [Stat; 3];

/// A bin without points.
pub(super) const EMPTY_BIN: Bin = [Stat::EMPTY; 3];

/// True when the bin holds no point of any kind.
pub(super) fn bin_is_empty(bin: &Bin) -> bool {
    bin.iter().all(Stat::is_empty)
}

/// Adds the points of `from` to `into`.
pub(super) fn merge_bin(into: &mut Bin, from: &Bin) {
    for (a, b) in into.iter_mut().zip(from) {
        a.merge(b);
    }
}

/// An outage `[start, end]` in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Span {
    pub(super) start: u64,
    pub(super) end: u64,
}

impl Span {
    /// The order in which outages are kept when there are too many: longer first, then
    /// earlier. It is total, so the kept set does not depend on arrival order.
    pub(super) fn rank(&self) -> (u64, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>) {
        (
            self.end - self.start,
            std::cmp::Reverse(self.start),
            std::cmp::Reverse(self.end),
        )
    }
}
