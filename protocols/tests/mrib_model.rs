//! Property test: any sequence of MRIB set/remove/take-diff operations keeps
//! the merged view equal to a from-scratch recomputation by a naive model,
//! keeps the route cap, reports each change correctly and produces diffs
//! equal to comparing snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use mcr_protocols::{
    Change, Contribution, Interface, Mrib, MribDiff, MribError, MribLimits, OifReason, Origin,
    Route, RouteKey,
};
use proptest::prelude::*;

/// Precedence written out independently of `Origin`'s `Ord`.
fn rank(o: Origin) -> u8 {
    match o {
        Origin::Static => 0,
        Origin::Pim => 1,
        Origin::Msdp => 2,
        Origin::Igmp => 3,
    }
}

fn keys() -> Vec<RouteKey> {
    let mut v = Vec::new();
    for g in 1..=3 {
        let group = Ipv4Addr::new(239, 0, 0, g);
        v.push(RouteKey::star_g(group));
        v.push(RouteKey::sg(Ipv4Addr::new(10, 0, 0, 1), group));
    }
    v
}

fn ifc(i: u32) -> Interface {
    Interface::new(i, format!("if{i}"))
}

#[derive(Clone, Debug)]
enum Op {
    Set(Origin, usize, Contribution),
    Remove(Origin, usize),
    RemoveOrigin(Origin),
    TakeDiff,
}

fn origin() -> impl Strategy<Value = Origin> {
    prop_oneof![
        Just(Origin::Static),
        Just(Origin::Pim),
        Just(Origin::Msdp),
        Just(Origin::Igmp)
    ]
}

fn reason() -> impl Strategy<Value = OifReason> {
    prop_oneof![
        Just(OifReason::Configured),
        Just(OifReason::LocalMembers),
        Just(OifReason::PimJoin),
        Just(OifReason::Inherited),
        Just(OifReason::AssertWinner)
    ]
}

fn contribution() -> impl Strategy<Value = Contribution> {
    (
        proptest::option::of(1u32..=5),
        proptest::option::of(1u8..=3),
        proptest::collection::btree_map(1u32..=5, reason(), 0..=4),
    )
        .prop_map(|(iif, nbr, oifs)| Contribution {
            iif: iif.map(ifc),
            rpf_neighbor: nbr.map(|n| Ipv4Addr::new(10, 9, 9, n)),
            oifs: oifs.into_iter().map(|(i, r)| (ifc(i), r)).collect(),
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (origin(), 0..6usize, contribution()).prop_map(|(o, k, c)| Op::Set(o, k, c)),
        3 => (origin(), 0..6usize).prop_map(|(o, k)| Op::Remove(o, k)),
        1 => origin().prop_map(Op::RemoveOrigin),
        1 => Just(Op::TakeDiff),
    ]
}

/// The naive model: every contribution, and the merge recomputed from it.
#[derive(Default)]
struct Model {
    contributions: BTreeMap<RouteKey, BTreeMap<u8, (Origin, Contribution)>>,
}

impl Model {
    fn route(&self, key: RouteKey) -> Option<Route> {
        let cs = self.contributions.get(&key)?;
        // Iterated by explicit rank: strongest first.
        let winner = cs.values().find(|(_, c)| c.iif.is_some());
        let iif = winner.and_then(|(_, c)| c.iif.clone());
        let mut oifs: BTreeMap<Interface, BTreeMap<Origin, OifReason>> = BTreeMap::new();
        for (o, c) in cs.values() {
            for (i, r) in &c.oifs {
                if Some(i.index) != iif.as_ref().map(|x| x.index) {
                    oifs.entry(i.clone()).or_default().insert(*o, *r);
                }
            }
        }
        Some(Route {
            key,
            iif,
            iif_origin: winner.map(|(o, _)| *o),
            rpf_neighbor: winner.and_then(|(_, c)| c.rpf_neighbor),
            oifs,
            origins: cs.values().map(|(o, _)| *o).collect(),
        })
    }

    fn snapshot(&self) -> BTreeMap<RouteKey, Route> {
        self.contributions
            .keys()
            .map(|k| (*k, self.route(*k).unwrap()))
            .collect()
    }
}

fn diff(old: &BTreeMap<RouteKey, Route>, new: &BTreeMap<RouteKey, Route>) -> MribDiff {
    let all: BTreeSet<RouteKey> = old.keys().chain(new.keys()).copied().collect();
    let mut d = MribDiff::default();
    for k in all {
        match (old.get(&k), new.get(&k)) {
            (None, Some(_)) => d.added.push(k),
            (Some(_), None) => d.removed.push(k),
            (Some(a), Some(b)) if a != b => d.changed.push(k),
            _ => {}
        }
    }
    d
}

fn expected_change(before: Option<Route>, after: Option<Route>) -> Option<Change> {
    match (before, after) {
        (None, Some(_)) => Some(Change::Added),
        (Some(_), None) => Some(Change::Removed),
        (Some(a), Some(b)) if a != b => Some(Change::Changed),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merged_view_equals_recomputation(
        max_routes in 1usize..=6,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let keys = keys();
        let mut mrib = Mrib::new(MribLimits { max_routes, max_local_members: 8 });
        let mut model = Model::default();
        let mut last_take = BTreeMap::new();
        let mut dropped = 0u64;
        for op in ops {
            match op {
                Op::Set(o, k, c) => {
                    let key = keys[k];
                    let before = model.route(key);
                    let result = mrib.set(o, key, c.clone());
                    if before.is_none() && model.contributions.len() >= max_routes {
                        dropped += 1;
                        prop_assert_eq!(result, Err(MribError::RouteLimit(max_routes)));
                    } else {
                        model.contributions.entry(key).or_default().insert(rank(o), (o, c));
                        prop_assert_eq!(result, Ok(expected_change(before, model.route(key))));
                    }
                }
                Op::Remove(o, k) => {
                    let key = keys[k];
                    let before = model.route(key);
                    if let Some(cs) = model.contributions.get_mut(&key) {
                        cs.remove(&rank(o));
                        if cs.is_empty() {
                            model.contributions.remove(&key);
                        }
                    }
                    let got = mrib.remove(o, key);
                    prop_assert_eq!(got, expected_change(before, model.route(key)));
                }
                Op::RemoveOrigin(o) => {
                    let touched = model
                        .contributions
                        .values()
                        .filter(|cs| cs.contains_key(&rank(o)))
                        .count();
                    for cs in model.contributions.values_mut() {
                        cs.remove(&rank(o));
                    }
                    model.contributions.retain(|_, cs| !cs.is_empty());
                    prop_assert_eq!(mrib.remove_origin(o), touched);
                }
                Op::TakeDiff => {
                    let now = model.snapshot();
                    prop_assert_eq!(mrib.take_diff(), diff(&last_take, &now));
                    last_take = now;
                }
            }
            // The whole merged view, in iteration order, equals the model.
            let got: Vec<Route> = mrib.iter().cloned().collect();
            let want: Vec<Route> = model.snapshot().into_values().collect();
            prop_assert_eq!(&got, &want);
            for key in &keys {
                prop_assert_eq!(mrib.get(key).cloned(), model.route(*key));
                let contribs: Vec<Origin> = mrib.contributions(key).map(|(o, _)| o).collect();
                let want: Vec<Origin> = model
                    .contributions
                    .get(key)
                    .map(|cs| cs.values().map(|(o, _)| *o).collect())
                    .unwrap_or_default();
                prop_assert_eq!(contribs, want);
            }
            prop_assert!(mrib.len() <= max_routes);
            prop_assert_eq!(mrib.dropped_routes(), dropped);
            for r in mrib.iter() {
                if let Some(iif) = &r.iif {
                    prop_assert!(!r.oifs.contains_key(iif), "iif never forwarded");
                }
            }
        }
        let now = model.snapshot();
        prop_assert_eq!(mrib.take_diff(), diff(&last_take, &now));
        prop_assert!(!mrib.has_diff());
    }
}
