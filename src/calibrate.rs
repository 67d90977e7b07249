//! Calibrated subscription limits: a subscription window's real token limit, estimated from
//! what the ledger metered in the window beside what the provider said of it.
//!
//! Claude's 5-hour and 7-day windows and Codex's primary and secondary windows have no
//! published size; the provider only reports how much of each is used, in percent. When the
//! ledger metered `t` tokens in a window by the time the provider said `p` %, the window holds
//! about `t / (p / 100)` tokens. Each such pair is a [`Sample`]; [`estimate`] takes the median
//! of their ratios (robust to a sample spoiled by a burst that was not yet metered) and says
//! how far it can be trusted from the number of samples and their spread.
//!
//! The limit comes out in the ledger's own tokens (input, output and both cache figures, as
//! every window counts them), which is what a `limits set --window-5h` figure limits. Usage
//! the ledger never saw (another machine on the same subscription) makes every ratio, and so
//! the estimate, too low.
//!
//! Pure computation: no clock, no store. The community presets for Claude plans ([`PLANS`])
//! live here too, since they answer the same question with a guess instead of a measurement.

/// A sample below this share of its window says too little: the provider's figure has two
/// decimals at best (often whole percents), so at 1 % one unit of rounding is a 50 % error.
pub const MIN_PERCENT: f64 = 5.0;

/// A window at or past 100 % is full: the provider stops counting there, the ledger may not.
pub const MAX_PERCENT: f64 = 100.0;

/// Fewer usable samples than this give no estimate at all.
pub const MIN_SAMPLES: usize = 3;

/// One observation of a window instance: what the ledger had metered in it when the provider
/// reported how much of it was used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Tokens the ledger metered from the window's start up to the report.
    pub tokens: i64,
    /// What the provider said, in percent (42.0 is 42 %).
    pub used_percent: f64,
}

impl Sample {
    /// Whether the sample carries enough signal to estimate from.
    fn usable(&self) -> bool {
        self.tokens > 0
            && self.used_percent.is_finite()
            && (MIN_PERCENT..MAX_PERCENT).contains(&self.used_percent)
    }

    /// The window's size this sample implies.
    fn ratio(&self) -> f64 {
        self.tokens as f64 * 100.0 / self.used_percent
    }
}

/// How far an [`Estimate`] can be trusted, in a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// Few samples or a wide spread: a rough idea only.
    Low,
    /// Enough samples that mostly agree.
    Medium,
    /// Many samples within a few percent of each other.
    High,
}

impl Confidence {
    /// The word shown to people and in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// A window's estimated token limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The estimated limit, in tokens (rounded to a whole token).
    pub limit: i64,
    /// The usable samples it rests on.
    pub samples: usize,
    /// The estimate's uncertainty, ± percent of `limit` (about 95 %).
    pub margin_percent: f64,
    /// The same, in a word.
    pub confidence: Confidence,
}

/// Why there is no estimate yet: too few samples with enough signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotYet {
    /// Samples with at least [`MIN_PERCENT`] used and some metered tokens.
    pub usable: usize,
    /// How many are needed ([`MIN_SAMPLES`]).
    pub needed: usize,
}

/// The window's limit from its samples: the median of `tokens / percent`, with a margin from
/// their spread (the median absolute deviation, scaled to a standard deviation) and count,
/// never below what the provider's rounding of its percent alone allows.
pub fn estimate(samples: &[Sample]) -> Result<Estimate, NotYet> {
    let mut ratios: Vec<f64> = samples
        .iter()
        .filter(|s| s.usable())
        .map(Sample::ratio)
        .collect();
    let mut percents: Vec<f64> = samples
        .iter()
        .filter(|s| s.usable())
        .map(|s| s.used_percent)
        .collect();
    let n = ratios.len();
    if n < MIN_SAMPLES {
        return Err(NotYet {
            usable: n,
            needed: MIN_SAMPLES,
        });
    }
    let limit = median(&mut ratios);
    let mut deviations: Vec<f64> = ratios.iter().map(|r| (r - limit).abs()).collect();
    // 1.4826 × MAD estimates a standard deviation; the median's own is 1.2533 σ / √n; 1.96 of
    // those is a 95 % interval.
    let sigma = 1.4826 * median(&mut deviations);
    let root_n = (n as f64).sqrt();
    let spread = 1.96 * 1.2533 * sigma / root_n / limit * 100.0;
    // A percent reported in whole units is off by up to half a unit.
    let rounding = 0.5 / median(&mut percents) * 100.0 / root_n;
    let margin_percent = (spread.max(rounding) * 10.0).round() / 10.0;
    let confidence = if n >= 10 && margin_percent <= 5.0 {
        Confidence::High
    } else if n >= 5 && margin_percent <= 15.0 {
        Confidence::Medium
    } else {
        Confidence::Low
    };
    Ok(Estimate {
        limit: limit.round() as i64,
        samples: n,
        margin_percent,
        confidence,
    })
}

/// The median of finite values (sorts them); the mean of the middle two for an even count.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// A community estimate of a Claude plan's 5-hour window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The name `limits set --plan` takes.
    pub name: &'static str,
    /// What it is called by Anthropic.
    pub title: &'static str,
    /// Tokens per 5-hour window, approximate.
    pub window_5h_tokens: i64,
}

/// Claude plans' 5-hour windows as the community estimates them: the figures
/// Claude-Code-Usage-Monitor (Maciek-roboblog/Claude-Code-Usage-Monitor, MIT) uses for its
/// `--plan pro|max5|max20`, from users' observations. Anthropic publishes none; they are
/// approximate, move with Anthropic's policy and models, and no weekly figure is known well
/// enough to include. A measured estimate (`--window-5h auto`) is better once there is one.
pub const PLANS: &[Plan] = &[
    Plan {
        name: "pro",
        title: "Claude Pro",
        window_5h_tokens: 19_000,
    },
    Plan {
        name: "max5",
        title: "Claude Max 5x",
        window_5h_tokens: 88_000,
    },
    Plan {
        name: "max20",
        title: "Claude Max 20x",
        window_5h_tokens: 220_000,
    },
];

/// The preset of that name (case-insensitive).
pub fn plan(name: &str) -> Option<&'static Plan> {
    PLANS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noise in [-1, 1) (an LCG), so the test is the same on every run.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
    }

    /// Samples of a window holding `limit` tokens, the provider's percent off by up to
    /// `noise` (a fraction) and rounded to two decimals as the headers give it.
    fn samples(limit: i64, n: usize, noise: f64, seed: u64) -> Vec<Sample> {
        let mut rng = Noise(seed);
        (1..=n)
            .map(|i| {
                let tokens = limit * i as i64 * 7 / (n as i64 * 8);
                let exact = tokens as f64 * 100.0 / limit as f64;
                let said = exact * (1.0 + noise * rng.next());
                Sample {
                    tokens,
                    used_percent: (said * 100.0).round() / 100.0,
                }
            })
            .collect()
    }

    #[test]
    fn recovers_a_known_limit_from_noisy_reports() {
        for seed in 1..20 {
            let e = estimate(&samples(880_000, 12, 0.03, seed)).unwrap();
            let off = (e.limit - 880_000).abs() as f64 / 880_000.0 * 100.0;
            assert!(off < 3.0, "seed {seed}: {e:?} is {off:.1} % off");
            assert!(
                off <= e.margin_percent + 1.0,
                "seed {seed}: {e:?} claims ±{} but is {off:.1} % off",
                e.margin_percent
            );
            assert_eq!(e.samples, 12);
            assert!(e.margin_percent < 5.0, "{e:?}");
            assert_eq!(e.confidence, Confidence::High, "{e:?}");
        }
    }

    #[test]
    fn exact_reports_give_the_exact_limit() {
        let e = estimate(&samples(880_000, 12, 0.0, 1)).unwrap();
        assert!((e.limit - 880_000).abs() <= 100, "{e:?}");
    }

    #[test]
    fn a_burst_metered_elsewhere_moves_the_median_little() {
        let mut s = samples(880_000, 11, 0.01, 7);
        // Another machine spent half the window: the provider says far more than we metered.
        s.push(Sample {
            tokens: 100_000,
            used_percent: 61.0,
        });
        let e = estimate(&s).unwrap();
        let off = (e.limit - 880_000).abs() as f64 / 880_000.0 * 100.0;
        assert!(off < 3.0, "{e:?}");
    }

    #[test]
    fn confidence_grows_with_samples_and_falls_with_spread() {
        let few = estimate(&samples(880_000, 3, 0.02, 3)).unwrap();
        assert_eq!(few.confidence, Confidence::Low, "{few:?}");
        let many = estimate(&samples(880_000, 30, 0.02, 3)).unwrap();
        assert_eq!(many.confidence, Confidence::High, "{many:?}");
        assert!(many.margin_percent < few.margin_percent, "{few:?} {many:?}");
        let wide = estimate(&samples(880_000, 12, 0.6, 3)).unwrap();
        assert!(wide.margin_percent > many.margin_percent, "{wide:?}");
        assert!(wide.confidence < Confidence::High, "{wide:?}");
    }

    #[test]
    fn too_few_usable_samples_give_no_estimate() {
        assert_eq!(
            estimate(&[]),
            Err(NotYet {
                usable: 0,
                needed: MIN_SAMPLES
            })
        );
        // Below 5 %, at 100 %, or nothing metered: no signal.
        let weak = [
            Sample {
                tokens: 10_000,
                used_percent: 1.0,
            },
            Sample {
                tokens: 900_000,
                used_percent: 100.0,
            },
            Sample {
                tokens: 0,
                used_percent: 20.0,
            },
            Sample {
                tokens: 88_000,
                used_percent: 10.0,
            },
            Sample {
                tokens: 176_000,
                used_percent: f64::NAN,
            },
        ];
        assert_eq!(
            estimate(&weak),
            Err(NotYet {
                usable: 1,
                needed: MIN_SAMPLES
            })
        );
    }

    #[test]
    fn presets_are_found_by_name_only() {
        assert_eq!(plan("MAX5").map(|p| p.window_5h_tokens), Some(88_000));
        assert_eq!(plan("pro").map(|p| p.window_5h_tokens), Some(19_000));
        assert_eq!(plan("max20").map(|p| p.window_5h_tokens), Some(220_000));
        assert!(plan("max7").is_none());
    }
}
