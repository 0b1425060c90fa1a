//! Current rates for `stats` and `cores`: counters sampled about once a
//! second; a rate is the difference to the previous sample.

use super::RuleTotals;
use mcr_dataplane::EngineStats;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_secs(1);

/// (packets, bytes)
type Counts = (u64, u64);

#[derive(Clone, Default)]
struct Sample {
    /// rule id -> (packets, bytes, per-output (packets, bytes))
    rules: BTreeMap<String, (u64, u64, Vec<Counts>)>,
    /// engine index -> frames
    engines: Vec<u64>,
}

#[derive(Default)]
pub struct RateTracker {
    last: Option<(Instant, Sample)>,
    prev: Option<(Instant, Sample)>,
}

/// Per-second rates of one rule.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleRate {
    pub pps: f64,
    pub bps: f64,
    pub outputs_pps: Vec<f64>,
    pub outputs_bps: Vec<f64>,
}

impl RateTracker {
    /// Whether a new sample is due (cheap; check before computing totals).
    pub fn due(&self) -> bool {
        self.last
            .as_ref()
            .is_none_or(|(t, _)| t.elapsed() >= INTERVAL)
    }

    pub fn sample(&mut self, rules: &[RuleTotals], engines: &[Arc<EngineStats>]) {
        let now = Instant::now();
        if let Some((t, _)) = &self.last {
            if now.duration_since(*t) < INTERVAL {
                return;
            }
        }
        let s = Sample {
            rules: rules
                .iter()
                .map(|r| {
                    (
                        r.id.clone(),
                        (
                            r.packets,
                            r.bytes,
                            r.outputs.iter().map(|o| (o.packets, o.bytes)).collect(),
                        ),
                    )
                })
                .collect(),
            engines: engines.iter().map(|e| e.frames).collect(),
        };
        self.prev = self.last.take();
        self.last = Some((now, s));
    }

    fn base(&self) -> Option<(f64, &Sample)> {
        let (t, s) = self.prev.as_ref().or(self.last.as_ref())?;
        let dt = t.elapsed().as_secs_f64();
        (dt > 0.05).then_some((dt, s))
    }

    pub fn rule(&self, r: &RuleTotals) -> RuleRate {
        let Some((dt, s)) = self.base() else {
            return RuleRate::default();
        };
        let Some((p, b, outs)) = s.rules.get(&r.id) else {
            return RuleRate::default();
        };
        RuleRate {
            pps: r.packets.saturating_sub(*p) as f64 / dt,
            bps: r.bytes.saturating_sub(*b) as f64 * 8.0 / dt,
            outputs_pps: r
                .outputs
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let before = outs.get(i).map_or(0, |x| x.0);
                    o.packets.saturating_sub(before) as f64 / dt
                })
                .collect(),
            outputs_bps: r
                .outputs
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let before = outs.get(i).map_or(0, |x| x.1);
                    o.bytes.saturating_sub(before) as f64 * 8.0 / dt
                })
                .collect(),
        }
    }

    pub fn engine_pps(&self, index: usize, frames: u64) -> f64 {
        let Some((dt, s)) = self.base() else {
            return 0.0;
        };
        frames.saturating_sub(s.engines.get(index).copied().unwrap_or(0)) as f64 / dt
    }
}
