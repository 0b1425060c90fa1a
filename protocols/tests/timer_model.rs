//! Property test: any sequence of TimerSet operations behaves like a naive
//! model (a list scanned for its minimum), including order among equal
//! deadlines, re-arm, cancel, the bound and the rejection counter.

use mcr_protocols::{TimerSet, TimerSetFull, Timestamp};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Arm(u8, u64),
    Cancel(u8),
    Pop(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..12, 0u64..20).prop_map(|(k, d)| Op::Arm(k, d)),
        2 => (0u8..12).prop_map(Op::Cancel),
        2 => (0u64..25).prop_map(Op::Pop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn timer_set_matches_naive_model(cap in 1usize..10, ops in proptest::collection::vec(op(), 1..120)) {
        let mut ts = TimerSet::with_capacity(cap);
        // (key, deadline, arming sequence)
        let mut model: Vec<(u8, u64, u64)> = Vec::new();
        let mut seq = 0u64;
        let mut rejected = 0u64;
        for op in ops {
            match op {
                Op::Arm(k, d) => {
                    seq += 1;
                    let got = ts.arm(k, Timestamp::from_secs(d));
                    if let Some(e) = model.iter_mut().find(|e| e.0 == k) {
                        prop_assert_eq!(got, Ok(Some(Timestamp::from_secs(e.1))));
                        *e = (k, d, seq);
                    } else if model.len() >= cap {
                        rejected += 1;
                        prop_assert_eq!(got, Err(TimerSetFull { capacity: cap }));
                    } else {
                        prop_assert_eq!(got, Ok(None));
                        model.push((k, d, seq));
                    }
                }
                Op::Cancel(k) => {
                    let want = model.iter().position(|e| e.0 == k).map(|i| model.remove(i).1);
                    prop_assert_eq!(ts.cancel(&k), want.map(Timestamp::from_secs));
                }
                Op::Pop(now) => {
                    let mut want = Vec::new();
                    while let Some(i) = (0..model.len()).min_by_key(|&i| (model[i].1, model[i].2)) {
                        if model[i].1 > now {
                            break;
                        }
                        want.push(model.remove(i).0);
                    }
                    let got: Vec<u8> = ts.expired(Timestamp::from_secs(now)).collect();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(ts.len(), model.len());
            prop_assert_eq!(ts.rejected(), rejected);
            let next = model.iter().map(|e| e.1).min().map(Timestamp::from_secs);
            prop_assert_eq!(ts.next_deadline(), next);
            for k in 0..12u8 {
                let want = model.iter().find(|e| e.0 == k).map(|e| Timestamp::from_secs(e.1));
                prop_assert_eq!(ts.deadline(&k), want);
            }
        }
    }
}
