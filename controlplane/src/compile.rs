//! The compiler: desired rules + the interfaces that exist now -> the next
//! forwarding table, the state of every rule, and the group joins to hold.

use crate::interfaces::Interfaces;
use mcr_config::Rule;
use mcr_dataplane::membership::Join;
use mcr_dataplane::{ForwardingTable, InputKey, LinkInfo, OutputSlot, RuleSpec, TableBuilder};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddrV4;

/// Where a rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The config file.
    Config,
    /// `mcrctl add` at run time.
    Runtime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRule {
    pub rule: Rule,
    pub origin: Origin,
}

/// Whether a rule forwards now, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RuleState {
    Active,
    /// Forwarding to the outputs whose interface exists; the others wait.
    Partial {
        waiting: Vec<String>,
    },
    Inactive {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleStatus {
    pub id: String,
    #[serde(flatten)]
    pub state: RuleState,
}

pub struct Compiled {
    pub table: ForwardingTable,
    pub statuses: Vec<RuleStatus>,
    pub joins: BTreeSet<Join>,
    /// How many rules of the table need each join (a join is left when the
    /// last of them goes).
    pub join_users: HashMap<Join, u32>,
    /// Unicast inputs (address, port), to be held quietly.
    pub unicast_inputs: BTreeSet<SocketAddrV4>,
}

/// The message the operator sees for a missing interface.
pub fn interface_not_found(name: &str) -> String {
    format!("Interface '{name}' not found")
}

/// The message for an output interface that exists without an IPv4
/// address.
pub fn no_address_yet(name: &str) -> String {
    format!("Interface '{name}' has no IPv4 address yet")
}

/// Compiles `rules` against `ifaces` into table `generation`. Multicast
/// outputs without their own `ttl` are sent with `multicast_ttl` (the
/// file's `multicast_ttl`, the same for rules added at run time). The rules
/// are borrowed: copying 100,000 rules per change was a large part of an
/// `add`. Outputs with `when: members` are left out (see
/// [`compile_with_members`]).
pub fn compile<'a>(
    rules: impl IntoIterator<Item = &'a Rule>,
    ifaces: &Interfaces,
    generation: u64,
    multicast_ttl: u8,
) -> Compiled {
    compile_with_members(rules, ifaces, generation, multicast_ttl, &|_, _, _| false)
}

/// Whether an interface (by index) has IGMP members of a group that want
/// traffic from a source (`None`: the output interface has no address, so
/// only any-source members count).
pub type MemberQuery<'a> = &'a dyn Fn(u32, std::net::Ipv4Addr, Option<std::net::Ipv4Addr>) -> bool;

/// [`compile`], with outputs marked `when: members` included only while
/// `members(output ifindex, output group, output interface address)` says
/// a member wants them. A rule whose every output waits for members stays
/// active with no outputs: its input is still joined and captured, so the
/// first packet after a join is forwarded without waiting for an upstream
/// join.
pub fn compile_with_members<'a>(
    rules: impl IntoIterator<Item = &'a Rule>,
    ifaces: &Interfaces,
    generation: u64,
    multicast_ttl: u8,
    members: MemberQuery<'_>,
) -> Compiled {
    let mut builder = TableBuilder::new(generation)
        .local_macs(ifaces.local_macs())
        .ip_links(ifaces.ip_links());
    let mut statuses = Vec::new();
    let mut joins = BTreeSet::new();
    let mut join_users = HashMap::new();
    let mut unicast_inputs = BTreeSet::new();
    for rule in rules {
        let (id, placed) = compile_rule(rule, ifaces, multicast_ttl, members);
        let state = match placed {
            Placed::Inactive(reason) => RuleState::Inactive { reason },
            Placed::InTable {
                spec,
                waiting,
                join,
                unicast,
            } => match builder.add_rule(spec) {
                // Validation rejects duplicate inputs; this is a runtime
                // rule racing a config rule. Keep the first, say why.
                Err(e) => RuleState::Inactive {
                    reason: e.to_string(),
                },
                Ok(()) => {
                    unicast_inputs.extend(unicast);
                    joins.insert(join);
                    *join_users.entry(join).or_insert(0) += 1;
                    waiting_state(waiting)
                }
            },
        };
        statuses.push(RuleStatus { id, state });
    }
    Compiled {
        table: builder
            .dormant(
                statuses
                    .iter()
                    .filter(|s| matches!(s.state, RuleState::Inactive { .. }))
                    .map(|s| s.id.clone())
                    .collect(),
            )
            .build(),
        statuses,
        joins,
        join_users,
        unicast_inputs,
    }
}

/// Active, or partial while some outputs wait.
pub fn waiting_state(waiting: Vec<String>) -> RuleState {
    if waiting.is_empty() {
        RuleState::Active
    } else {
        RuleState::Partial { waiting }
    }
}

/// Where one rule goes: see [`compile_rule`].
#[derive(Debug, Clone)]
pub enum Placed {
    /// Not in the table, and why.
    Inactive(String),
    /// In the table as `spec` (unless its input is taken), with the
    /// outputs that wait, the group join its input needs, and its unicast
    /// input to hold quietly.
    InTable {
        spec: RuleSpec,
        waiting: Vec<String>,
        join: Join,
        unicast: Option<SocketAddrV4>,
    },
}

/// Compiles one rule against `ifaces` (what [`compile_with_members`] does
/// for each): its id and where it goes. Costs the same with 10 rules or
/// 100,000 running, which is what keeps `mcrctl add` O(1).
pub fn compile_rule(
    rule: &Rule,
    ifaces: &Interfaces,
    multicast_ttl: u8,
    members: MemberQuery<'_>,
) -> (String, Placed) {
    let id = rule.id().to_string();
    let Some(input_if) = ifaces.get(&rule.input.interface) else {
        return (
            id,
            Placed::Inactive(interface_not_found(&rule.input.interface)),
        );
    };
    let mut waiting = Vec::new();
    let mut outputs = Vec::with_capacity(rule.outputs.len());
    let mut following = 0;
    for out in &rule.outputs {
        if out.when == mcr_config::OutputWhen::Members {
            following += 1;
            if let Some(i) = ifaces.get(&out.interface) {
                if !members(i.index, out.group, i.addrs.first().copied()) {
                    continue;
                }
            }
        }
        match ifaces.get(&out.interface) {
            // A multicast send leaves from the interface's own address:
            // until it has one every send fails, so the output waits
            // for it as for a missing interface.
            Some(i) if i.addrs.is_empty() && out.group.is_multicast() => {
                waiting.push(no_address_yet(&out.interface))
            }
            Some(i) => outputs.push(OutputSlot {
                ifindex: i.index,
                ifname: i.name.clone(),
                dest: SocketAddrV4::new(out.group, out.port),
                ttl: out.effective_ttl(multicast_ttl),
                ttl_decrement: out.decrements_ttl(),
                // The prebuilt-header path cannot fragment: use it only
                // when anything the input can carry fits the output,
                // so a flow never splits between the two paths.
                link: match (i.mac, i.addrs.first()) {
                    (Some(mac), Some(addr)) if i.mtu >= input_if.mtu && i.mtu >= 68 => {
                        Some(LinkInfo {
                            mac,
                            addr: *addr,
                            mtu: i.mtu,
                        })
                    }
                    _ => None,
                },
            }),
            None => waiting.push(interface_not_found(&out.interface)),
        }
    }
    if outputs.is_empty() && following == 0 {
        return (id, Placed::Inactive(waiting.join("; ")));
    }
    let spec = RuleSpec {
        id: id.clone(),
        input: InputKey {
            ifindex: input_if.index,
            group: rule.input.group,
            port: rule.input.port,
        },
        source: rule.input.source,
        outputs,
    };
    let placed = Placed::InTable {
        spec,
        waiting,
        join: Join {
            ifindex: input_if.index,
            group: rule.input.group,
            source: rule.input.source,
        },
        unicast: (!rule.input.group.is_multicast())
            .then(|| SocketAddrV4::new(rule.input.group, rule.input.port)),
    };
    (id, placed)
}

/// The id under which the engines count a route (`route (S,G)` or
/// `route (*,G)`): relay rule ids never contain a space and a parenthesis
/// together with a comma, so the two never collide.
pub fn route_id(key: &mcr_protocols::RouteKey) -> String {
    format!("route {key}")
}

/// The table rules for the routes mcr's engines forward (past the kernel's
/// 32 vifs, see `crate::mroute`): input (iif, G, [S], any protocol, see
/// [`mcr_dataplane::ROUTE_PORT`]), one output per oif with the oif's MAC
/// and MTU. An oif that is gone, or has no Ethernet MAC (frames carry an
/// Ethernet header), is left out; a route without a present iif is left
/// out whole.
pub fn route_specs<'a>(
    routes: impl IntoIterator<Item = (&'a mcr_protocols::RouteKey, &'a crate::mroute::EngineRoute)>,
    ifaces: &Interfaces,
) -> Vec<RuleSpec> {
    let by_index = |i: u32| ifaces.iter().find(|x| x.index == i);
    let mut specs = Vec::new();
    for (key, r) in routes {
        if by_index(r.iif.index).is_none() {
            continue;
        }
        let outputs = r
            .oifs
            .iter()
            .filter(|o| o.index != r.iif.index)
            .filter_map(|o| {
                let i = by_index(o.index)?;
                Some(OutputSlot {
                    ifindex: i.index,
                    ifname: i.name.clone(),
                    dest: SocketAddrV4::new(key.group, mcr_dataplane::ROUTE_PORT),
                    ttl: 0,
                    ttl_decrement: true,
                    link: Some(LinkInfo {
                        mac: i.mac?,
                        addr: i
                            .addrs
                            .first()
                            .copied()
                            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                        mtu: i.mtu,
                    }),
                })
            })
            .collect();
        specs.push(RuleSpec {
            id: route_id(key),
            input: InputKey {
                ifindex: r.iif.index,
                group: key.group,
                port: mcr_dataplane::ROUTE_PORT,
            },
            source: key.source,
            outputs,
        });
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interfaces::Interface;
    use mcr_config::{Input, Output};
    use std::net::Ipv4Addr;

    fn iface(name: &str, index: u32) -> Interface {
        Interface {
            name: name.into(),
            index,
            mac: None,
            up: true,
            addrs: vec![Ipv4Addr::new(10, 0, index as u8, 1)],
            nets: vec![],
            mtu: 1500,
            hatype: crate::interfaces::ARPHRD_ETHER,
        }
    }

    /// A route past the kernel's vifs becomes a port-0 table rule: one
    /// output per oif with its MAC and MTU, never the iif, none for an oif
    /// that is gone or has no MAC; the relay's own rules are untouched.
    #[test]
    fn routes_compile_to_port_0_rules_with_one_output_per_oif() {
        let mut ifs = vec![iface("up", 1)];
        for i in 2..=41u32 {
            let mut x = iface(&format!("d{i}"), i);
            x.mac = Some(mcr_wire::MacAddr([2, 0, 0, 0, 0, i as u8]));
            ifs.push(x);
        }
        ifs.push(iface("tun", 50)); // no MAC
        let ifaces = Interfaces::from_list(ifs);
        let g = Ipv4Addr::new(239, 1, 2, 3);
        let key = mcr_protocols::RouteKey::star_g(g);
        let mut oifs: Vec<mcr_protocols::Interface> = (2..=41u32)
            .map(|i| mcr_protocols::Interface::new(i, format!("d{i}")))
            .collect();
        oifs.push(mcr_protocols::Interface::new(1, "up"));
        oifs.push(mcr_protocols::Interface::new(50, "tun"));
        oifs.push(mcr_protocols::Interface::new(99, "gone"));
        let route = crate::mroute::EngineRoute {
            iif: mcr_protocols::Interface::new(1, "up"),
            oifs,
        };
        let specs = route_specs([(&key, &route)], &ifaces);
        assert_eq!(specs.len(), 1);
        let s = &specs[0];
        assert_eq!(s.id, "route (*,239.1.2.3)");
        assert_eq!(
            (s.input.ifindex, s.input.group, s.input.port, s.source),
            (1, g, 0, None)
        );
        assert_eq!(s.outputs.len(), 40);
        assert!(s.outputs.iter().all(|o| o.dest.port() == 0
            && *o.dest.ip() == g
            && o.ttl_decrement
            && o.link.is_some_and(|l| l.mtu == 1500)));
        assert_eq!(
            s.outputs[5].link.unwrap().mac,
            mcr_wire::MacAddr([2, 0, 0, 0, 0, 7])
        );
        let compiled = compile(std::iter::empty(), &ifaces, 1, 1);
        let (table, refused) = compiled.table.with_routes(specs);
        assert!(refused.is_empty());
        assert!(table.is_route(0) && table.has_routes());
        assert_eq!(
            table.lookup(1, g, 0, Ipv4Addr::new(10, 0, 0, 9)),
            Some(0),
            "any source"
        );
        assert_eq!(
            table.lookup(2, g, 0, Ipv4Addr::new(10, 0, 0, 9)),
            None,
            "RPF"
        );
        assert_eq!(
            table.inputs_by_interface(),
            vec![(1, mcr_dataplane::input::LinkKind::Ethernet, vec![(g, 0)])]
        );
    }

    fn rule(input_if: &str, outs: &[&str]) -> DesiredRule {
        DesiredRule {
            rule: Rule {
                name: None,
                input: Input {
                    interface: input_if.into(),
                    group: Ipv4Addr::new(239, 1, 1, 1),
                    port: 5000,
                    source: None,
                },
                outputs: outs
                    .iter()
                    .enumerate()
                    .map(|(i, o)| Output {
                        interface: (*o).into(),
                        group: Ipv4Addr::new(239, 2, 2, 2),
                        port: 6000 + i as u16,
                        ttl: None,
                        when: mcr_config::OutputWhen::Always,
                    })
                    .collect(),
            },
            origin: Origin::Config,
        }
    }

    #[test]
    fn member_outputs_follow_the_member_query() {
        let ifaces = Interfaces::from_list(vec![iface("a", 2), iface("b", 3), iface("c", 4)]);
        let mut r = rule("a", &["b", "c"]);
        r.rule.outputs[1].when = mcr_config::OutputWhen::Members;
        let ttl = mcr_config::DEFAULT_MULTICAST_TTL;
        // No members on c: only b.
        let c = compile_with_members([&r.rule], &ifaces, 1, ttl, &|_, _, _| false);
        assert_eq!(c.statuses[0].state, RuleState::Active);
        assert_eq!(c.table.output_slots().len(), 1);
        // A member of 239.2.2.2 on c (index 4): both.
        let q = |i: u32, g: Ipv4Addr, _| i == 4 && g == Ipv4Addr::new(239, 2, 2, 2);
        let c = compile_with_members([&r.rule], &ifaces, 2, ttl, &q);
        assert_eq!(c.table.output_slots().len(), 2);
        // Every output waits for members: still active (input captured),
        // nothing sent.
        r.rule.outputs[0].when = mcr_config::OutputWhen::Members;
        let c = compile_with_members([&r.rule], &ifaces, 3, ttl, &|_, _, _| false);
        assert_eq!(c.statuses[0].state, RuleState::Active);
        assert!(c.table.output_slots().is_empty());
        assert_eq!(c.joins.len(), 1);
    }

    #[test]
    fn missing_interfaces_make_rules_inactive_or_partial() {
        let ifaces = Interfaces::from_list(vec![iface("a", 2), iface("b", 3)]);
        let c = compile(
            [rule("a", &["b", "zz"]), {
                let mut r = rule("eth0", &["b"]);
                r.rule.input.port = 7000;
                r
            }]
            .iter()
            .map(|d| &d.rule),
            &ifaces,
            1,
            mcr_config::DEFAULT_MULTICAST_TTL,
        );
        assert_eq!(
            c.statuses[0].state,
            RuleState::Partial {
                waiting: vec!["Interface 'zz' not found".into()]
            }
        );
        assert_eq!(
            c.statuses[1].state,
            RuleState::Inactive {
                reason: "Interface 'eth0' not found".into()
            }
        );
        assert_eq!(c.table.rules().len(), 1);
        assert_eq!(c.joins.len(), 1);
        assert_eq!(c.table.output_slots()[0].ttl, 1);
    }

    #[test]
    fn multicast_ttl_is_the_default_of_multicast_outputs() {
        let ifaces = Interfaces::from_list(vec![iface("a", 2), iface("b", 3)]);
        let mut r = rule("a", &["b", "b", "b"]);
        r.rule.outputs[1].ttl = Some(mcr_config::Ttl::Set(2));
        r.rule.outputs[2].group = Ipv4Addr::new(10, 9, 9, 9);
        let c = compile([&r.rule], &ifaces, 1, 9);
        let ttls: Vec<u8> = c.table.output_slots().iter().map(|s| s.ttl).collect();
        // Default, own ttl, unicast default.
        assert_eq!(ttls, [9, 2, 64]);
    }

    #[test]
    fn an_output_without_an_address_waits_for_it() {
        let mut b = iface("b", 3);
        b.addrs.clear();
        let ifaces = Interfaces::from_list(vec![iface("a", 2), b, iface("c", 4)]);
        let rules = [rule("a", &["b", "c"]), rule("a", &["b"])];
        let c = compile(rules.iter().map(|d| &d.rule), &ifaces, 1, 1);
        assert_eq!(
            c.statuses[0].state,
            RuleState::Partial {
                waiting: vec!["Interface 'b' has no IPv4 address yet".into()]
            }
        );
        assert_eq!(c.table.rules()[0].outputs.len(), 1);
        assert!(matches!(c.statuses[1].state, RuleState::Inactive { .. }));
    }
}
