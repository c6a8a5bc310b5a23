//! Gap detection and filling (being written).

/// How a gap is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FillMethod {
    /// Straight line between the neighbours.
    #[default]
    Linear,
    /// Last observation carried forward.
    Locf,
    /// Seeded noise around the straight line, scaled to the local variability.
    Stochastic,
    /// Report the gap, fill nothing.
    None,
}

impl FillMethod {
    /// `"linear"`, `"locf"`, `"stochastic"` or `"none"`.
    pub const fn name(self) -> &'static str {
        match self {
            FillMethod::Linear => "linear",
            FillMethod::Locf => "locf",
            FillMethod::Stochastic => "stochastic",
            FillMethod::None => "none",
        }
    }
}
