//! The capture sockets of every input interface, one per engine, owned by
//! the control plane and handed to the engines through the table.
//!
//! `PACKET_FANOUT` spreads flows by hash over the sockets in the group *at
//! that moment*: if engines joined one by one while traffic flowed, a flow
//! would move from one socket to another when the next one joined, and a
//! packet still queued on the first could leave after a newer one on the
//! second. So all of an interface's sockets are opened closed (a drop-all
//! filter) and joined first, and only then given the real filter. The flow
//! to socket mapping is fixed before the first packet is taken.

use crate::input::LinkKind;
use crate::socket::{fanout_id, CaptureSocket};
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

/// The sockets of one input interface, indexed by engine.
pub type CaptureSet = Vec<Arc<CaptureSocket>>;

/// What [`Captures::update`] returns: the sets for the table, and the
/// interfaces whose sockets could not be opened or filtered.
pub type CaptureUpdate = (Vec<(u32, CaptureSet)>, Vec<(u32, io::Error)>);

#[derive(Default)]
pub struct Captures {
    by_if: BTreeMap<u32, CaptureSet>,
    ring_frames: u32,
}

impl Captures {
    /// Sockets opened from now on read through a receive ring of
    /// `frames` slots (0: a receive queue; `data_plane.receive_ring`).
    /// Sockets already open keep what they have: reopening an input's set
    /// while traffic flows would move flows between engines.
    pub fn with_ring(frames: u32) -> Captures {
        Captures {
            by_if: BTreeMap::new(),
            ring_frames: frames,
        }
    }

    /// The ring slots new sockets get (0: none).
    pub fn ring_frames(&self) -> u32 {
        self.ring_frames
    }

    /// The rings of the open sockets: (sockets with one, the most slots
    /// of one, bytes mapped by all).
    pub fn ring_usage(&self) -> (usize, u32, u64) {
        let mut usage = (0, 0, 0);
        for sock in self.by_if.values().flatten() {
            if let Some(ring) = &sock.ring {
                let (slots, bytes) = ring.geometry();
                usage.0 += 1;
                usage.1 = usage.1.max(slots);
                usage.2 += bytes as u64;
            }
        }
        usage
    }

    /// Makes the sockets match `wanted` (each input interface with the
    /// (group, port) pairs its filter passes) for `engines` engines.
    /// Returns the sets for the table, and the interfaces that failed.
    pub fn update(
        &mut self,
        wanted: &[crate::table::InterfaceInputs],
        engines: usize,
    ) -> CaptureUpdate {
        let mut failed = Vec::new();
        // An interface re-created under the same index with another link
        // type needs sockets of the other kind.
        self.by_if.retain(|i, set| {
            wanted
                .iter()
                .any(|(w, link, _)| w == i && set.first().is_some_and(|s| s.link == *link))
        });
        for (ifindex, link, pairs) in wanted {
            if !self.by_if.contains_key(ifindex) {
                match open_set(*ifindex, *link, engines, self.ring_frames) {
                    Ok(set) => {
                        self.by_if.insert(*ifindex, set);
                    }
                    Err(e) => {
                        failed.push((*ifindex, e));
                        continue;
                    }
                }
            }
            for sock in &self.by_if[ifindex] {
                if let Err(e) = sock.set_filter(pairs) {
                    failed.push((*ifindex, e));
                    break;
                }
            }
        }
        let sets = self.by_if.iter().map(|(i, s)| (*i, s.clone())).collect();
        (sets, failed)
    }
}

fn open_set(ifindex: u32, link: LinkKind, engines: usize, ring: u32) -> io::Result<CaptureSet> {
    (0..engines.max(1))
        .map(|_| CaptureSocket::open_closed(ifindex, fanout_id(ifindex), link, ring).map(Arc::new))
        .collect()
}
