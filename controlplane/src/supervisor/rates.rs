//! Current rates for `stats` and `cores`: counters sampled about once a
//! second; a rate is the difference to the previous sample.
//!
//! A sample keeps the engines' counter snapshots themselves (a few `Arc`s),
//! not per-rule totals: summing 100,000 rules into maps every second took
//! ~15% of the control thread while idle and held it up to ~150 ms at a
//! time. The per-rule sums of a sample are made only when `stats` asks.

use super::RuleTotals;
use mcr_dataplane::{EngineStats, RuleStats};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Default)]
struct Sample {
    engines: Vec<Arc<EngineStats>>,
    /// The kernel fast path's per-rule counters (empty when it is off).
    fast: Vec<RuleStats>,
}

/// Per-rule totals of a sample, by rule id.
type Sums = HashMap<String, RuleTotals>;

/// The last two samples.
#[derive(Default)]
pub struct RateTracker {
    last: Option<(Instant, Sample)>,
    prev: Option<(Instant, Sample)>,
    /// The per-rule sums of the base sample, made at the first `stats`
    /// after a sample and reused until the next one (a client asking
    /// often pays for them once a second, not per answer).
    base_cache: RefCell<Option<(Instant, Rc<Sums>)>>,
}

/// Per-second rates of one rule.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleRate {
    pub pps: f64,
    pub bps: f64,
    pub outputs_pps: Vec<f64>,
    pub outputs_bps: Vec<f64>,
}

/// A sample's per-rule totals, for [`RateTracker::rule`].
pub struct Base {
    dt: f64,
    rules: Rc<Sums>,
}

impl RateTracker {
    /// Whether a new sample is due (cheap; check before computing totals).
    pub fn due(&self) -> bool {
        self.last
            .as_ref()
            .is_none_or(|(t, _)| t.elapsed() >= INTERVAL)
    }

    /// Keeps the engines' current snapshots (and the fast path's counters).
    pub fn sample(&mut self, engines: Vec<Arc<EngineStats>>, fast: Vec<RuleStats>) {
        let now = Instant::now();
        if let Some((t, _)) = &self.last {
            if now.duration_since(*t) < INTERVAL {
                return;
            }
        }
        self.prev = self.last.take();
        self.last = Some((now, Sample { engines, fast }));
        // The cached sums belong to the sample that just became `prev` or
        // an older one; keep them only if still the base.
        let base_time = self.prev.as_ref().map(|(t, _)| *t);
        let mut cache = self.base_cache.borrow_mut();
        if cache.as_ref().map(|(t, _)| Some(*t)) != Some(base_time) {
            *cache = None;
        }
    }

    fn base_sample(&self) -> Option<(f64, &Sample)> {
        let (t, s) = self.prev.as_ref().or(self.last.as_ref())?;
        let dt = t.elapsed().as_secs_f64();
        (dt > 0.05).then_some((dt, s))
    }

    /// The per-rule totals of the sample rates are taken against.
    pub fn base(&self) -> Option<Base> {
        let (t, s) = self.prev.as_ref().or(self.last.as_ref())?;
        let dt = t.elapsed().as_secs_f64();
        if dt <= 0.05 {
            return None;
        }
        let mut cache = self.base_cache.borrow_mut();
        let rules = match &*cache {
            Some((when, rules)) if when == t => Rc::clone(rules),
            _ => {
                let all = s.engines.iter().flat_map(|e| e.rules.iter()).chain(&s.fast);
                let sums: Sums = super::sum_rules(all, 0)
                    .into_values()
                    .map(|r| (r.id.clone(), r))
                    .collect();
                let sums = Rc::new(sums);
                *cache = Some((*t, Rc::clone(&sums)));
                sums
            }
        };
        Some(Base { dt, rules })
    }

    /// The rates of rule `r` against `base`.
    pub fn rule(base: Option<&Base>, r: &RuleTotals) -> RuleRate {
        let Some(base) = base else {
            return RuleRate::default();
        };
        let Some(old) = base.rules.get(&r.id) else {
            return RuleRate::default();
        };
        let dt = base.dt;
        // Outputs by name, as the totals are.
        let before = |name: &str| old.outputs.iter().find(|o| o.output == name);
        RuleRate {
            pps: r.packets.saturating_sub(old.packets) as f64 / dt,
            bps: r.bytes.saturating_sub(old.bytes) as f64 * 8.0 / dt,
            outputs_pps: r
                .outputs
                .iter()
                .map(|o| {
                    let b = before(&o.output).map_or(0, |x| x.packets);
                    o.packets.saturating_sub(b) as f64 / dt
                })
                .collect(),
            outputs_bps: r
                .outputs
                .iter()
                .map(|o| {
                    let b = before(&o.output).map_or(0, |x| x.bytes);
                    o.bytes.saturating_sub(b) as f64 * 8.0 / dt
                })
                .collect(),
        }
    }

    pub fn engine_pps(&self, index: usize, frames: u64) -> f64 {
        let Some((dt, s)) = self.base_sample() else {
            return 0.0;
        };
        let before = s.engines.get(index).map_or(0, |e| e.frames);
        frames.saturating_sub(before) as f64 / dt
    }
}
