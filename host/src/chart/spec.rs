//! What a caller says about a chart: how it looks ([`ChartSpec`]) and what each point is
//! ([`PointKind`]).

/// What a charted point is.
///
/// # Examples
/// ```
/// use mend::chart::PointKind;
/// assert_ne!(PointKind::Measured, PointKind::Flagged);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PointKind {
    /// A measured reading of good quality.
    Measured,
    /// A value made by a gap fill; drawn in a distinct style, never mistaken for a measurement.
    Synthetic,
    /// A measured reading with a quality flag (out of band, spike, stuck, implausible, …).
    Flagged,
}

impl PointKind {
    /// Its slot in a [`Bin`](super::bin::Bin).
    pub(super) const fn index(self) -> usize {
        match self {
            PointKind::Measured => 0,
            PointKind::Synthetic => 1,
            PointKind::Flagged => 2,
        }
    }
}

/// What a chart looks like: its title, the valid band it shades, and its size in pixels.
///
/// # Examples
/// ```
/// use mend::chart::ChartSpec;
/// let spec = ChartSpec::default();
/// assert_eq!(spec.title, "mend");
/// assert_eq!(spec.band, (50.0, 55.0));
/// assert_eq!((spec.width, spec.height), (1200, 500));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ChartSpec {
    /// The caption at the top.
    pub title: String,
    /// The valid band `(low, high)` in °C, drawn as a shaded strip.
    pub band: (f64, f64),
    /// The width of the SVG in pixels.
    pub width: u32,
    /// The height of the SVG in pixels.
    pub height: u32,
}

impl Default for ChartSpec {
    fn default() -> Self {
        Self {
            title: "mend".to_owned(),
            band: (50.0, 55.0),
            width: 1200,
            height: 500,
        }
    }
}
