//! The Prometheus/OpenMetrics endpoint (`metrics.listen`,
//! `mcrd supervisor --metrics-listen`).
//!
//! The supervisor builds a [`Snapshot`] from the very answers `status` and
//! `stats` give (the same functions make them), about once a second on the
//! rate sampling tick, and hands it to the [`MetricsServer`]. The server's
//! own threads render it with `prometheus-client` (Prometheus text 0.0.4,
//! or OpenMetrics text when the scraper's `Accept` asks for it; once per
//! snapshot and format, however many scrapers ask) and serve it, so a scrape
//! never waits for or blocks the control thread, and a scrape agrees with
//! `mcrctl --json stats` taken at the same tick by construction.
//!
//! Names follow the Prometheus conventions: `mcr_` prefix, counters end in
//! `_total`, bytes and seconds are base units, labels `rule`, `output`,
//! `interface`, `reason`, `engine`, `protocol`, `state`. Label values are
//! escaped by the encoder. The list is in docs/deployment.md#metrics.

mod server;

pub use server::{MetricsServer, ServerLimits};

use crate::control::api::{Stats, Status};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

/// What one scrape shows: the daemon's state at one sampling tick.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// What `status` answered at that tick.
    pub status: Status,
    /// What `stats` answered at that tick.
    pub stats: Stats,
    /// The forwarding table generation the supervisor last published.
    pub table_generation: u64,
    /// (engine, table generation it runs).
    pub engine_generations: Vec<(usize, u64)>,
    /// Control clients streaming events.
    pub event_subscribers: usize,
}

/// The text formats served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), the
    /// default: counters are named with `_total` in `# TYPE` too.
    Prometheus,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`), for scrapers
    /// that ask for it in `Accept` (Prometheus does); ends with `# EOF`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }
}

/// The snapshot as text in `format`.
pub fn render(snapshot: &Arc<Snapshot>, format: Format) -> String {
    #[derive(Debug)]
    struct C(Arc<Snapshot>);
    impl Collector for C {
        fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode(&self.0, encoder)
        }
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(C(Arc::clone(snapshot))));
    // Rough size: ~120 bytes a series, 2 + 4 a rule and output.
    let series = 64 + snapshot.stats.rules.len() * 3 + outputs(&snapshot.stats) * 5;
    let mut out = String::with_capacity(series * 120);
    match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    }
    .expect("writing to a String does not fail");
    out
}

fn outputs(stats: &Stats) -> usize {
    stats.rules.iter().map(|r| r.outputs.len()).sum()
}

/// One metric family: its descriptor, then one sample per label set.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), first.metric_type())?;
    for (labels, metric) in samples {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A family without labels.
fn single<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, unit.as_ref(), metric.metric_type())?;
    metric.encode(m)
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn gauge(v: i64) -> ConstGauge<i64> {
    ConstGauge::new(v)
}

fn gauge_of(v: usize) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Drop reasons and counts of a [`mcr_dataplane::Drops`], by field name
/// (the names `stats` uses), so a new reason appears without a change here.
fn reasons(d: &mcr_dataplane::Drops) -> Vec<(String, u64)> {
    match serde_json::to_value(d) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter_map(|(k, v)| v.as_u64().map(|n| (k, n)))
            .collect(),
        _ => Vec::new(),
    }
}

fn encode(s: &Snapshot, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let st = &s.status;
    let rules = &s.stats.rules;
    let enc = &mut e;

    // Per rule and output.
    family(
        enc,
        "mcr_rule_packets",
        "Datagrams a rule matched (summed over engines and the kernel fast path).",
        None,
        rules
            .iter()
            .map(|r| ([("rule", r.id.as_str())], counter(r.packets))),
    )?;
    family(
        enc,
        "mcr_rule",
        "UDP payload bytes a rule matched.",
        Some(Unit::Bytes),
        rules
            .iter()
            .map(|r| ([("rule", r.id.as_str())], counter(r.bytes))),
    )?;
    let outs = || {
        rules
            .iter()
            .flat_map(|r| r.outputs.iter().map(move |o| (r.id.as_str(), o)))
    };
    family(
        enc,
        "mcr_output_packets",
        "Datagrams sent to an output (GROUP:PORT@INTERFACE) of a rule.",
        None,
        outs().map(|(r, o)| {
            (
                [("rule", r), ("output", o.output.as_str())],
                counter(o.packets),
            )
        }),
    )?;
    family(
        enc,
        "mcr_output",
        "UDP payload bytes sent to an output of a rule.",
        Some(Unit::Bytes),
        outs().map(|(r, o)| {
            (
                [("rule", r), ("output", o.output.as_str())],
                counter(o.bytes),
            )
        }),
    )?;
    family(
        enc,
        "mcr_output_drops",
        "Datagrams not sent to an output: reason full (socket buffer full) or error (send failed).",
        None,
        outs().flat_map(|(r, o)| {
            [("full", o.full), ("error", o.errors)].map(|(reason, n)| {
                (
                    [
                        ("rule", r),
                        ("output", o.output.as_str()),
                        ("reason", reason),
                    ],
                    counter(n),
                )
            })
        }),
    )?;

    // Drops and engines.
    family(
        enc,
        "mcr_drops",
        "Frames dropped, summed over engines, by reason.",
        None,
        reasons(&s.stats.drops)
            .into_iter()
            .map(|(k, n)| ([("reason", k)], counter(n))),
    )?;
    let engines = &s.stats.engines;
    family(
        enc,
        "mcr_engine_frames",
        "Frames a data-plane engine took from its capture sockets.",
        None,
        engines
            .iter()
            .map(|en| ([("engine", en.engine.to_string())], counter(en.frames))),
    )?;
    family(
        enc,
        "mcr_engine_drops",
        "Frames a data-plane engine dropped, by reason.",
        None,
        engines.iter().flat_map(|en| {
            reasons(&en.drops).into_iter().map(move |(k, n)| {
                (
                    [("engine", en.engine.to_string()), ("reason", k)],
                    counter(n),
                )
            })
        }),
    )?;
    family(
        enc,
        "mcr_engine_cpu",
        "The CPU a data-plane engine is pinned to.",
        None,
        engines
            .iter()
            .map(|en| ([("engine", en.engine.to_string())], gauge_of(en.cpu))),
    )?;
    family(
        enc,
        "mcr_engine_table_generation",
        "The forwarding table generation a data-plane engine runs.",
        None,
        s.engine_generations
            .iter()
            .map(|(en, g)| ([("engine", en.to_string())], gauge(*g as i64))),
    )?;

    // Rules, table, fast path.
    family(
        enc,
        "mcr_rules",
        "Rules by state (active, partial, inactive).",
        None,
        [
            ("active", st.rules.active),
            ("partial", st.rules.partial),
            ("inactive", st.rules.inactive),
        ]
        .map(|(state, n)| ([("state", state)], gauge_of(n))),
    )?;
    single(
        enc,
        "mcr_table_generation",
        "Generation of the forwarding table last published (grows at every recompilation).",
        None,
        gauge(s.table_generation as i64),
    )?;
    let fp = &st.kernel_fast_path;
    single(
        enc,
        "mcr_kernel_fast_path_enabled",
        "1 when the kernel fast path (tc ingress program) is loaded and wanted.",
        None,
        gauge(fp.enabled.into()),
    )?;
    single(
        enc,
        "mcr_kernel_fast_path_rules",
        "Rules the kernel fast path forwards.",
        None,
        gauge_of(fp.rules),
    )?;
    family(
        enc,
        "mcr_kernel_fast_path_interface",
        "1 for each interface the kernel fast path is attached to.",
        None,
        fp.interfaces
            .iter()
            .map(|i| ([("interface", i.as_str())], gauge(1))),
    )?;

    // Reloads, control socket, protocols, process.
    single(
        enc,
        "mcr_reloads",
        "Successful configuration reloads since start.",
        None,
        counter(st.reloads),
    )?;
    if let Some(r) = &st.last_reload {
        single(
            enc,
            "mcr_last_reload_success",
            "1 when the last reload was applied, 0 when it was refused.",
            None,
            gauge(r.ok.into()),
        )?;
        single(
            enc,
            "mcr_last_reload_timestamp",
            "When the last reload (applied or refused) happened, Unix time.",
            Some(Unit::Seconds),
            gauge(r.time as i64),
        )?;
    }
    single(
        enc,
        "mcr_control_clients",
        "Connected control clients.",
        None,
        gauge_of(st.control_clients),
    )?;
    single(
        enc,
        "mcr_event_subscribers",
        "Control clients streaming events.",
        None,
        gauge_of(s.event_subscribers),
    )?;
    single(
        enc,
        "mcr_events_dropped",
        "Events not delivered to subscribers that fell behind (over the subscribers connected now).",
        None,
        counter(st.events_dropped),
    )?;
    let protocols = [
        ("igmp", st.protocols.igmp),
        ("pim", st.protocols.pim),
        ("msdp", st.protocols.msdp),
    ];
    family(
        enc,
        "mcr_protocol_configured",
        "1 when the running config enables the routing protocol.",
        None,
        protocols.map(|(p, s)| ([("protocol", p)], gauge(s.configured.into()))),
    )?;
    family(
        enc,
        "mcr_protocol_running",
        "1 when an instance of the routing protocol runs in this daemon.",
        None,
        protocols.map(|(p, s)| ([("protocol", p)], gauge(s.running.into()))),
    )?;
    family(
        enc,
        "mcr_build_info",
        "Always 1; the version of the running mcrd.",
        None,
        [([("version", st.version.as_str())], gauge(1))],
    )?;
    single(
        enc,
        "mcr_uptime",
        "Seconds since mcrd started.",
        Some(Unit::Seconds),
        gauge(st.uptime_secs as i64),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
