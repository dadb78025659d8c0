//! The statistics `results` reports, each the textbook test statsmodels and scipy compute (the
//! tests below compare them on many inputs): the 95% Wilson score interval of a proportion, the
//! two-sided pooled two-proportion z-test, and Pearson's χ² goodness-of-fit test. The
//! distributions come from `statrs`; nothing here is a special function of its own.

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// The confidence of every interval `results` prints.
pub const CONFIDENCE: f64 = 0.95;

/// The standard normal distribution.
fn standard_normal() -> Normal {
    Normal::standard()
}

/// The normal quantile of a two-sided interval at [`CONFIDENCE`] (1.959963984540054…).
fn critical() -> f64 {
    standard_normal().inverse_cdf(1.0 - (1.0 - CONFIDENCE) / 2.0)
}

/// The [`CONFIDENCE`] Wilson score interval of `successes` in `trials`, clipped to [0, 1] as
/// statsmodels' `proportion_confint(method="wilson")` is; `None` without trials, or with more
/// successes than trials.
pub fn wilson(successes: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 || successes > trials {
        return None;
    }
    let (n, q) = (trials as f64, successes as f64 / trials as f64);
    let z = critical();
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (q + z2 / (2.0 * n)) / denominator;
    let half = z * (q * (1.0 - q) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    // At 0 and at every trial the bound is exactly 0 (1): the two terms cancel exactly, but not
    // in floating point.
    let low = match successes {
        0 => 0.0,
        _ => (center - half).clamp(0.0, 1.0),
    };
    let high = match successes == trials {
        true => 1.0,
        false => (center + half).clamp(0.0, 1.0),
    };
    Some((low, high))
}

/// A two-proportion z-test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZTest {
    /// The z statistic: (p₁ − p₀) over the pooled standard error.
    pub z: f64,
    /// Its two-sided p-value.
    pub p_value: f64,
}

/// The two-sided pooled z-test of `c1` successes in `n1` trials against `c0` in `n0` (as
/// statsmodels' `proportions_ztest([c1, c0], [n1, n0])`); `None` when it is undefined: a group
/// without trials, more successes than trials, or a pooled proportion of 0 or 1 (no variance).
pub fn two_proportion_z(c1: u64, n1: u64, c0: u64, n0: u64) -> Option<ZTest> {
    if n1 == 0 || n0 == 0 || c1 > n1 || c0 > n0 {
        return None;
    }
    let (n1f, n0f) = (n1 as f64, n0 as f64);
    let difference = c1 as f64 / n1f - c0 as f64 / n0f;
    let pooled = (c1 + c0) as f64 / (n1 + n0) as f64;
    let variance = pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n0f);
    if variance <= 0.0 {
        return None;
    }
    let z = difference / variance.sqrt();
    Some(ZTest {
        z,
        p_value: 2.0 * standard_normal().sf(z.abs()),
    })
}

/// Pearson's χ² goodness-of-fit test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoodnessOfFit {
    /// Σ (observed − expected)² / expected.
    pub statistic: f64,
    /// Degrees of freedom: the number of groups − 1.
    pub df: u32,
    /// The upper-tail probability of the statistic.
    pub p_value: f64,
}

/// The χ² goodness-of-fit test of `observed` counts against the shares `weights` (any scale),
/// as scipy's `chisquare(observed, total × weight / Σ weights)`; `None` unless there are at
/// least two groups, as many weights as counts, every weight positive and finite, and some
/// observation.
pub fn goodness_of_fit(observed: &[u64], weights: &[f64]) -> Option<GoodnessOfFit> {
    if observed.len() < 2
        || observed.len() != weights.len()
        || weights.iter().any(|w| !w.is_finite() || *w <= 0.0)
    {
        return None;
    }
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return None;
    }
    let weight_sum: f64 = weights.iter().sum();
    let statistic: f64 = observed
        .iter()
        .zip(weights)
        .map(|(o, w)| {
            let expected = total as f64 * w / weight_sum;
            let d = *o as f64 - expected;
            d * d / expected
        })
        .sum();
    let df = u32::try_from(observed.len() - 1).ok()?;
    let p_value = ChiSquared::new(f64::from(df)).ok()?.sf(statistic);
    Some(GoodnessOfFit {
        statistic,
        df,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    //! Every function against statsmodels and scipy, run in the workspace's `.venv` (`make
    //! venv`) on the same inputs: `cli/tests/stats_reference.py`.

    use super::*;
    use serde_json::{Value, json};

    /// Within 1e-9 relative, or both beneath what a double holds with precision.
    fn close(ours: f64, theirs: f64) -> bool {
        close_at(ours, theirs, ours.abs().max(theirs.abs()))
    }

    /// Within 1e-9 of `scale`, or both beneath what a double holds with precision.
    fn close_at(ours: f64, theirs: f64, scale: f64) -> bool {
        (ours - theirs).abs() <= 1e-9 * scale || ours.abs().max(theirs.abs()) < 1e-290
    }

    /// A deterministic spread of inputs (xorshift), so a failure reproduces.
    struct Inputs(u64);

    impl Inputs {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Trials across magnitudes: 1 to 10¹², log-uniform.
        fn trials(&mut self) -> u64 {
            let digits = self.next() % 13;
            (1 + self.next() % 10u64.pow(digits as u32)).max(1)
        }

        /// Successes in `n`: often an edge (0, 1, n − 1, n), else anywhere.
        fn successes(&mut self, n: u64) -> u64 {
            match self.next() % 8 {
                0 => 0,
                1 => n,
                2 => 1.min(n),
                3 => n.saturating_sub(1),
                4 => n / 2,
                _ => self.next() % (n + 1),
            }
        }
    }

    /// The reference answers of the Python script for `cases`.
    fn reference(cases: &Value) -> Value {
        let python = testkit::process::python();
        let script = testkit::workspace().join("cli/tests/stats_reference.py");
        let mut child = std::process::Command::new(&python)
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin
                .write_all(cases.to_string().as_bytes())
                .expect("write the cases");
        }
        let out = child.wait_with_output().expect("the script ends");
        assert!(
            out.status.success(),
            "{} failed (statsmodels and scipy come from requirements-dev.txt: run `make venv`): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the script answers JSON")
    }

    fn number(v: &Value) -> Option<f64> {
        v.as_f64()
    }

    #[test]
    fn wilson_z_test_and_chi_square_match_statsmodels_and_scipy() {
        let mut inputs = Inputs(0x5eed_1234_abcd_0042);
        let mut wilson_cases: Vec<(u64, u64)> = vec![
            (0, 1),
            (1, 1),
            (0, 10),
            (10, 10),
            (1, 1_000_000_000_000),
            (999_999_999_999, 1_000_000_000_000),
            (500, 1000),
            (3, 7),
        ];
        let mut z_cases: Vec<(u64, u64, u64, u64)> = vec![
            (300, 5000, 250, 5000),
            (0, 10, 1, 10),
            (10, 10, 9, 10),
            (1, 3, 0, 1_000_000),
            (5_000_000, 10_000_000, 4_990_000, 10_000_000),
            (40_000, 100_000, 10_000, 100_000), // z ≈ 150: a p-value past a double's range
            (50, 100, 0, 100),
            (12, 99, 5, 83),
        ];
        let mut chi_cases: Vec<(Vec<u64>, Vec<f64>)> = vec![
            (vec![5000, 5000], vec![50.0, 50.0]),
            (vec![5200, 4800], vec![50.0, 50.0]),
            (vec![10, 0], vec![1.0, 1.0]),
            (vec![0, 1, 2], vec![1.0, 1.0, 1.0]),
            (vec![900, 100], vec![90.0, 10.0]),
            (vec![1, 1_000_000_000], vec![1e-9, 1.0]),
            (vec![333, 333, 334], vec![1.0, 1.0, 1.0]),
            (vec![52_000, 48_000], vec![50.0, 50.0]),
        ];
        for _ in 0..400 {
            let n = inputs.trials();
            wilson_cases.push((inputs.successes(n), n));
            let (n1, n0) = (inputs.trials(), inputs.trials());
            z_cases.push((inputs.successes(n1), n1, inputs.successes(n0), n0));
            let groups = 2 + (inputs.next() % 4) as usize;
            let weights: Vec<f64> = (0..groups)
                .map(|_| (1 + inputs.next() % 100) as f64)
                .collect();
            let scale = inputs.trials();
            let observed: Vec<u64> = weights
                .iter()
                .map(|w| (scale as f64 * w / 100.0) as u64 + inputs.next() % 50)
                .collect();
            chi_cases.push((observed, weights));
        }
        let answers = reference(&json!({
            "wilson": wilson_cases,
            "ztest": z_cases,
            "chisquare": chi_cases,
        }));

        let mut checked = 0;
        for ((count, nobs), theirs) in wilson_cases
            .iter()
            .zip(answers["wilson"].as_array().expect("wilson answers").iter())
        {
            let (low, high) = wilson(*count, *nobs).expect("defined");
            let (tl, th) = (
                number(&theirs[0]).expect("low"),
                number(&theirs[1]).expect("high"),
            );
            // A bound is the difference of two terms near the interval's upper end: its
            // rounding is relative to that end (a lower bound at 0 may be 1e-17 either way).
            let scale = high.max(th);
            assert!(
                close_at(low, tl, scale) && close_at(high, th, scale),
                "wilson({count}, {nobs}): ours ({low}, {high}), statsmodels ({tl}, {th})"
            );
            checked += 1;
        }
        for ((c1, n1, c0, n0), theirs) in z_cases
            .iter()
            .zip(answers["ztest"].as_array().expect("z answers").iter())
        {
            let ours = two_proportion_z(*c1, *n1, *c0, *n0);
            match (ours, number(&theirs[0]), number(&theirs[1])) {
                (Some(test), Some(z), Some(p)) => assert!(
                    close(test.z, z) && close(test.p_value, p),
                    "z-test ({c1}/{n1} vs {c0}/{n0}): ours {test:?}, statsmodels z {z}, p {p}"
                ),
                // statsmodels answers NaN where the test is undefined (no pooled variance).
                (None, None, None) => {}
                (ours, z, p) => panic!(
                    "z-test ({c1}/{n1} vs {c0}/{n0}): ours {ours:?}, statsmodels z {z:?}, p {p:?}"
                ),
            }
            checked += 1;
        }
        for ((observed, weights), theirs) in chi_cases
            .iter()
            .zip(answers["chisquare"].as_array().expect("chi answers").iter())
        {
            let test = goodness_of_fit(observed, weights).expect("defined");
            let (s, p) = (
                number(&theirs[0]).expect("statistic"),
                number(&theirs[1]).expect("p"),
            );
            assert!(
                close(test.statistic, s) && close(test.p_value, p),
                "chisquare({observed:?}, {weights:?}): ours {test:?}, scipy statistic {s}, p {p}"
            );
            checked += 1;
        }
        assert_eq!(
            checked,
            wilson_cases.len() + z_cases.len() + chi_cases.len()
        );
    }

    #[test]
    fn undefined_tests_say_so() {
        assert_eq!(wilson(1, 0), None);
        assert_eq!(wilson(3, 2), None);
        assert_eq!(
            two_proportion_z(0, 10, 0, 10),
            None,
            "no conversions: no variance"
        );
        assert_eq!(two_proportion_z(10, 10, 5, 5), None, "all converted");
        assert_eq!(two_proportion_z(1, 10, 0, 0), None, "no control");
        assert_eq!(goodness_of_fit(&[10], &[1.0]), None, "one group");
        assert_eq!(goodness_of_fit(&[0, 0], &[1.0, 1.0]), None, "no exposures");
        assert_eq!(goodness_of_fit(&[5, 5], &[1.0, 0.0]), None, "a zero weight");
        assert!((critical() - 1.959_963_984_540_054).abs() < 1e-14);
        let fair = goodness_of_fit(&[500, 500], &[50.0, 50.0]).expect("defined");
        assert_eq!((fair.statistic, fair.df, fair.p_value), (0.0, 1, 1.0));
    }
}
