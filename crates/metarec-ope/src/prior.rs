//! [`BtsPrior`]: ZOZOTOWN's Beta prior for Bernoulli Thompson sampling, per campaign.
//!
//! Open Bandit Pipeline ships it as `prior_bts.yaml`: for each campaign, a list `alpha` and a list
//! `beta` with one value per item. The file uses only that much YAML (top-level keys, two nested
//! keys, block lists of numbers), so a small line parser reads it without a YAML library; anything
//! else is an [`OpeError::Format`] naming the line.

use crate::error::OpeError;
use std::collections::BTreeMap;
use std::path::Path;

/// The Beta prior of one campaign: item `i` starts at `Beta(alpha[i], beta[i])`.
#[derive(Debug, Clone, PartialEq)]
pub struct BetaPrior {
    /// Prior successes plus one, per item; positive.
    pub alpha: Vec<f64>,
    /// Prior failures plus one, per item; positive.
    pub beta: Vec<f64>,
}

/// Priors by campaign name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BtsPrior {
    /// The campaigns in file order of their names (sorted).
    pub campaigns: BTreeMap<String, BetaPrior>,
}

impl BtsPrior {
    /// Reads a prior file.
    pub fn load(path: &Path) -> Result<Self, OpeError> {
        let text = std::fs::read_to_string(path).map_err(|e| metarec_data::DataError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a prior file; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, OpeError> {
        let fail = |line: usize, reason: String| OpeError::Format {
            source_name: source_name.to_owned(),
            line,
            reason,
        };
        let mut raw: BTreeMap<String, (Vec<f64>, Vec<f64>, usize)> = BTreeMap::new();
        let mut campaign: Option<String> = None;
        // Which list the `- value` lines go to: false = alpha, true = beta.
        let mut list: Option<bool> = None;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let content = line.split('#').next().unwrap_or("").trim_end();
            if content.trim().is_empty() {
                continue;
            }
            let indent = content.len() - content.trim_start().len();
            let body = content.trim_start();
            if let Some(value) = body
                .strip_prefix("- ")
                .or(body.strip_prefix('-').filter(|s| s.is_empty()))
            {
                let (Some(name), Some(is_beta)) = (&campaign, list) else {
                    return Err(fail(n, "a list value outside `alpha:` or `beta:`".into()));
                };
                let v: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| fail(n, format!("`{}` is not a number", value.trim())))?;
                if !(v.is_finite() && v > 0.0) {
                    return Err(fail(n, format!("{v} is not a positive Beta parameter")));
                }
                let entry = raw
                    .get_mut(name)
                    .expect("campaign registered when its key was read");
                if is_beta {
                    entry.1.push(v)
                } else {
                    entry.0.push(v)
                }
                continue;
            }
            let Some(key) = body.strip_suffix(':') else {
                return Err(fail(
                    n,
                    format!("expected `key:` or `- value`, found `{body}`"),
                ));
            };
            if indent == 0 {
                if raw.contains_key(key) {
                    return Err(fail(n, format!("campaign `{key}` appears twice")));
                }
                raw.insert(key.to_owned(), (Vec::new(), Vec::new(), n));
                campaign = Some(key.to_owned());
                list = None;
            } else {
                if campaign.is_none() {
                    return Err(fail(n, format!("`{key}:` before any campaign")));
                }
                list = match key {
                    "alpha" => Some(false),
                    "beta" => Some(true),
                    other => {
                        return Err(fail(
                            n,
                            format!("unknown key `{other}` (expected alpha or beta)"),
                        ));
                    }
                };
            }
        }
        let mut campaigns = BTreeMap::new();
        for (name, (alpha, beta, line)) in raw {
            if alpha.is_empty() || alpha.len() != beta.len() {
                return Err(fail(
                    line,
                    format!(
                        "campaign `{name}` has {} alpha and {} beta values; they must be equal and non-zero",
                        alpha.len(),
                        beta.len()
                    ),
                ));
            }
            campaigns.insert(name, BetaPrior { alpha, beta });
        }
        Ok(BtsPrior { campaigns })
    }

    /// The prior of one campaign, or an error listing the campaigns present.
    pub fn campaign(&self, name: &str) -> Result<&BetaPrior, OpeError> {
        self.campaigns.get(name).ok_or_else(|| OpeError::Config {
            name: "campaign",
            reason: format!(
                "the prior has no campaign `{name}` (found: {})",
                self.campaigns
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_campaigns_with_alpha_and_beta_lists() {
        let text = "all:\n  alpha:\n    - 47.0\n    - 8.0\n  beta:\n    - 12345.0\n    - 2.5\nmen:\n  alpha:\n  - 1\n  beta:\n  - 3 # comment\n";
        let p = BtsPrior::parse(text, "t").unwrap();
        assert_eq!(p.campaigns.len(), 2);
        let all = p.campaign("all").unwrap();
        assert_eq!(all.alpha, vec![47.0, 8.0]);
        assert_eq!(all.beta, vec![12345.0, 2.5]);
        assert_eq!(p.campaign("men").unwrap().beta, vec![3.0]);
        assert!(
            p.campaign("women")
                .unwrap_err()
                .to_string()
                .contains("found: all, men")
        );
    }

    #[test]
    fn malformed_files_name_the_line() {
        for (text, message) in [
            (
                "all:\n  alpha:\n    - x\n",
                "t: line 3: `x` is not a number",
            ),
            (
                "all:\n  alpha:\n    - 0\n",
                "t: line 3: 0 is not a positive Beta parameter",
            ),
            (
                "all:\n  gamma:\n",
                "t: line 2: unknown key `gamma` (expected alpha or beta)",
            ),
            (
                "  - 1\n",
                "t: line 1: a list value outside `alpha:` or `beta:`",
            ),
            (
                "all:\n  alpha:\n    - 1\n  beta:\n",
                "t: line 1: campaign `all` has 1 alpha and 0 beta values; they must be equal and non-zero",
            ),
        ] {
            assert_eq!(BtsPrior::parse(text, "t").unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn reads_the_shipped_zozotown_prior() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/obd/prior_bts.yaml");
        assert!(
            path.is_file(),
            "{} is missing: run `cargo run -p metarec -- data fetch obd`",
            path.display()
        );
        let p = BtsPrior::load(&path).unwrap();
        assert_eq!(p.campaign("all").unwrap().alpha.len(), 80);
        assert_eq!(p.campaign("men").unwrap().alpha.len(), 34);
        assert_eq!(p.campaign("women").unwrap().beta.len(), 46);
        assert_eq!(p.campaign("all").unwrap().alpha[0], 47.0);
    }
}
