//! The command line of `mcrctl` (also read by the man page generator).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "mcrctl", version, about = "Control a running mcrd")]
pub struct Cli {
    /// Control socket of the mcrd to talk to [default: /run/mcr/mcrd-NAME.sock
    /// inside the named namespace NAME, else /run/mcr/mcrd.sock].
    #[arg(long, visible_alias = "socket-path", env = "MCR_SOCKET", global = true)]
    pub socket: Option<PathBuf>,
    /// Print the daemon's answer as JSON (stable field names) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10.0, global = true)]
    pub timeout: f64,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Show the daemon's state: version, uptime, rules, counters, namespace.
    Status,
    /// Check that the daemon answers.
    Ping,
    /// Show the daemon's version and protocol version.
    Version,
    /// List every rule with its id, origin and state.
    List,
    /// Add a rule at run time (validated like the config file).
    Add {
        #[arg(long)]
        input_interface: String,
        #[arg(long)]
        input_group: String,
        #[arg(long)]
        input_port: u16,
        /// Only take datagrams from this source (S,G).
        #[arg(long)]
        input_source: Option<String>,
        /// Comma-separated GROUP:PORT:INTERFACE[:TTL] outputs.
        #[arg(long, value_delimiter = ',', required = true)]
        outputs: Vec<String>,
        /// The rule's name (also its id).
        #[arg(long)]
        name: Option<String>,
        /// Same as --name: a named rule's id is its name.
        #[arg(long, conflicts_with = "name")]
        rule_id: Option<String>,
    },
    /// Remove a rule by id or name.
    #[command(group(
        clap::ArgGroup::new("which")
            .required(true)
            .args(["id", "rule_id", "name"])
    ))]
    Remove {
        /// The rule's id (or name): `mcrctl remove r1`, the same as `--rule-id r1`.
        id: Option<String>,
        /// The rule's id, as `mcrctl list` shows it.
        #[arg(long)]
        rule_id: Option<String>,
        /// The rule's name (a named rule's id is its name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Per rule and per output counters, rates and drops.
    Stats {
        /// Refresh every SECS seconds (default 1) until interrupted.
        #[arg(long, num_args = 0..=1, default_missing_value = "1")]
        watch: Option<f64>,
    },
    /// Each data-plane engine with its CPU, interfaces, rate and drops.
    #[command(visible_alias = "workers")]
    Cores,
    /// Show, check or save the configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Get or set the daemon's log filter.
    #[command(subcommand)]
    LogLevel(LogCmd),
    /// Re-read the config file and apply the difference.
    Reload {
        /// Load this file instead of the one mcrd was started with.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Show what would change without applying it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stream events (rule state changes, interfaces, reloads, IGMP joins,
    /// leaves and querier changes, PIM neighbours and DR changes, MSDP
    /// peers and SAs) until interrupted.
    Subscribe {
        /// Comma-separated categories: rules, interfaces, reload, igmp, pim, msdp, mroute [default: all].
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
    /// PIM neighbours, interfaces, injected neighbours and RPF.
    #[command(subcommand)]
    Pim(PimCmd),
    /// IGMP: groups learned, querier state, run-time enable/disable.
    #[command(subcommand)]
    Igmp(IgmpCmd),
    /// Multicast routes: (S,G) or (*,G), origins, iif, RPF neighbour, oifs
    /// with why each is there, uptime, kernel counters, where installed.
    Mroute,
    /// MSDP (RFC 3618): peers, the SA cache, run-time peers.
    #[command(subcommand)]
    Msdp(MsdpCmd),
}

/// `mcrctl msdp ...`.
#[derive(Subcommand)]
pub enum MsdpCmd {
    /// Peers: state, role, uptime, SAs in/out, cached, drops, last error.
    Peers,
    /// The SA cache: source, group, origin RP, learned from, expiry.
    SaCache {
        /// Only this group.
        #[arg(long)]
        group: Option<std::net::Ipv4Addr>,
        /// Only SAs learned from this peer.
        #[arg(long)]
        peer: Option<std::net::Ipv4Addr>,
    },
    /// Add (or change) a peer at run time (config save writes it; reload undoes it).
    AddPeer {
        #[arg(long)]
        address: std::net::Ipv4Addr,
        #[arg(long)]
        description: Option<String>,
        /// Mesh group name (SAs from a member are not flooded to the others).
        #[arg(long)]
        mesh_group: Option<String>,
        /// Accept SAs from this peer without the peer-RPF check.
        #[arg(long)]
        default_peer: bool,
    },
    /// Remove a peer at run time (its session closes).
    RemovePeer {
        #[arg(long)]
        address: std::net::Ipv4Addr,
    },
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// The running state as JSON5.
    Show,
    /// Validate a file (as the daemon would load it).
    Check { file: PathBuf },
    /// Write the running state to FILE (default: the daemon's config file), atomically.
    Save { file: Option<PathBuf> },
}

#[derive(Subcommand)]
pub enum LogCmd {
    Get,
    /// Set LEVEL (e.g. debug) for everything, or for one --target.
    Set {
        #[arg(long)]
        target: Option<String>,
        level: String,
    },
}

/// `mcrctl pim ...`.
#[derive(Subcommand)]
pub enum PimCmd {
    /// Neighbours: address, interface, origin, uptime, expiry, DR priority, GenID, DR flag.
    Neighbors,
    /// PIM interfaces: DR, our priority, hello timer, counters.
    Interfaces,
    /// Inject a neighbour (valid at once, never expires).
    AddNeighbor {
        #[arg(long)]
        address: std::net::Ipv4Addr,
        #[arg(long)]
        interface: String,
        /// DR priority [default: 1].
        #[arg(long)]
        priority: Option<u32>,
        /// Free text naming who injected it.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Remove an injected neighbour.
    RemoveNeighbor {
        #[arg(long)]
        address: std::net::Ipv4Addr,
        #[arg(long)]
        interface: String,
    },
    /// List the injected neighbours.
    ExternalNeighbors,
    /// Remove every injected neighbour (of one interface).
    ClearNeighbors {
        #[arg(long)]
        interface: Option<String>,
    },
    /// Add or replace a static RPF route (rpf_provider "static").
    AddRpfRoute {
        /// Source prefix, e.g. 10.1.0.0/16.
        #[arg(long)]
        source: String,
        #[arg(long)]
        interface: String,
        #[arg(long)]
        neighbor: Option<std::net::Ipv4Addr>,
        #[arg(long)]
        metric: Option<u32>,
    },
    /// Remove the static RPF route of a prefix.
    RemoveRpfRoute {
        #[arg(long)]
        source: String,
    },
    /// List the static RPF routes.
    ListRpfRoutes,
    /// Remove every static RPF route.
    ClearRpfRoutes,
    /// Ask the RPF provider about a source.
    QueryRpf {
        #[arg(long)]
        source: std::net::Ipv4Addr,
    },
    /// Tree state: (*,G), (S,G), (S,G,rpt) with upstream, RPF, timers, downstream per interface, counters.
    JoinState,
    /// RP mappings in force; with --group, which RP serves the group.
    Rp {
        #[arg(long)]
        group: Option<std::net::Ipv4Addr>,
    },
    /// Add or replace a static RP mapping now (until the next reload; config save writes it).
    SetStaticRp {
        /// Group range, e.g. 239.0.0.0/8 (or one group).
        #[arg(long)]
        group: String,
        #[arg(long)]
        rp: std::net::Ipv4Addr,
    },
    /// Set this router's RP address now, or clear it (until the next reload; config save writes it).
    SetRp {
        #[arg(long, required_unless_present = "clear", conflicts_with = "clear")]
        address: Option<std::net::Ipv4Addr>,
        /// No RP address from now on (the file's is set aside too).
        #[arg(long)]
        clear: bool,
    },
}

/// `mcrctl igmp ...`.
#[derive(Subcommand)]
pub enum IgmpCmd {
    /// Groups per interface: mode, sources, timers (seconds left), version, last reporter.
    Groups {
        /// Only this interface.
        #[arg(long)]
        interface: Option<String>,
    },
    /// Querier per interface (address, whether it is us), version, timers, counters.
    Interfaces,
    /// Run IGMP on an interface now (until the next reload; not saved).
    Enable {
        #[arg(long)]
        interface: String,
    },
    /// Stop IGMP on an interface now (until the next reload; not saved).
    Disable {
        #[arg(long)]
        interface: String,
    },
}
