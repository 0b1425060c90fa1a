//! The mcr data plane: the compiled [`ForwardingTable`] and the per-core
//! packet [`Engine`]s that apply it.
//!
//! Start reading at [`engine`]: its module docs say where a packet enters,
//! where it is matched and where it leaves.

pub mod bpf;
pub mod bufring;
pub mod capture;
pub mod engine;
pub mod ethtool;
pub mod fastpath;
pub mod input;
pub mod membership;
pub mod rxring;
pub mod socket;
pub mod stats;
pub mod table;
pub mod tx;

pub use engine::{Engine, EngineParams};
/// Bytes glommio may preallocate per engine for storage I/O (its minimum;
/// the engines' packet I/O does not use it).
const ENGINE_GLOMMIO_IO_MEMORY: usize = 64 * 1024;

pub use stats::{Drops, EngineStats, RuleStats, RuleStatsList, StatsHandle};
pub use table::ROUTE_PORT;
pub use table::{
    DeltaStep, ForwardingTable, InputKey, LinkInfo, OutputSlot, RuleSpec, TableBuilder, TableDelta,
    TableHandle,
};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The running engines, one per core.
pub struct EngineSet {
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
    wakers: Vec<Arc<std::os::fd::OwnedFd>>,
    stats: Vec<StatsHandle>,
    cpus: Vec<usize>,
    stop: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the data-plane engine on CPU {cpu}: {source}")]
    Engine { cpu: usize, source: std::io::Error },
    #[error("cannot start the executor for CPU {cpu}: {message}")]
    Executor { cpu: usize, message: String },
}

impl EngineSet {
    /// Starts one engine per CPU in `cpus`, each pinned to its CPU, all
    /// following `table`. Returns once every engine is ready, or the first
    /// error.
    pub fn start(
        cpus: &[usize],
        table: TableHandle,
        params: EngineParams,
    ) -> Result<EngineSet, StartError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = EngineSet {
            handles: Vec::new(),
            wakers: Vec::new(),
            stats: Vec::new(),
            cpus: cpus.to_vec(),
            stop: Arc::clone(&stop),
        };
        for (index, &cpu) in cpus.iter().enumerate() {
            let stats = StatsHandle::default();
            let waker = engine::wake_fd().map_err(|source| StartError::Engine { cpu, source })?;
            let w = Arc::clone(&waker);
            let (ready_tx, ready_rx) = crossbeam_channel::bounded::<std::io::Result<()>>(1);
            let (t, s, st, p) = (
                table.clone(),
                stats.clone(),
                Arc::clone(&stop),
                params.clone(),
            );
            let spawned = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(cpu))
                .name(&format!("mcr-engine-{index}"))
                // glommio preallocates this for its own storage I/O (10 MiB
                // by default); the engines drive their own io_uring for
                // packets and never use it, so take glommio's minimum.
                .io_memory(ENGINE_GLOMMIO_IO_MEMORY)
                .spawn(move || async move {
                    match Engine::new(index, cpu, t, s, st, p, w) {
                        Ok(engine) => {
                            let _ = ready_tx.send(Ok(()));
                            engine.run().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            let handle = match spawned {
                Ok(h) => h,
                Err(e) => {
                    set.stop();
                    return Err(StartError::Executor {
                        cpu,
                        message: e.to_string(),
                    });
                }
            };
            set.handles.push(handle);
            set.wakers.push(waker);
            set.stats.push(stats);
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    set.stop();
                    return Err(StartError::Engine { cpu, source });
                }
                Err(_) => {
                    set.stop();
                    return Err(StartError::Executor {
                        cpu,
                        message: "engine thread exited during start".into(),
                    });
                }
            }
        }
        Ok(set)
    }

    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// The latest snapshot of every engine's counters.
    pub fn stats(&self) -> Vec<Arc<EngineStats>> {
        self.stats.iter().map(StatsHandle::snapshot).collect()
    }

    /// Wakes every engine (after a table is published), so idle engines
    /// take it at once.
    pub fn wake_all(&self) {
        for w in &self.wakers {
            engine::wake(w);
        }
    }

    /// Waits until every engine runs table `generation` (or a later one).
    /// Returns false on timeout.
    pub fn wait_for_generation(&self, generation: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stats().iter().all(|s| s.generation >= generation) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // An engine takes an edited table in microseconds: poll
            // finely (a 2 ms step was most of an `add`), coarser later.
            let waited = timeout.saturating_sub(deadline.saturating_duration_since(Instant::now()));
            std::thread::sleep(if waited < Duration::from_millis(5) {
                Duration::from_micros(50)
            } else {
                Duration::from_millis(1)
            });
        }
    }

    /// Stops every engine and waits for it (bounded by `timeout`), so the
    /// final counters are in [`stats`](Self::stats).
    pub fn stop_within(&mut self, timeout: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake_all();
        let deadline = Instant::now() + timeout;
        for h in self.handles.drain(..) {
            // ExecutorJoinHandle has no timed join: wait on a helper thread.
            let (tx, rx) = crossbeam_channel::bounded(1);
            std::thread::spawn(move || {
                let _ = h.join();
                let _ = tx.send(());
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if rx.recv_timeout(left).is_err() {
                tracing::warn!("a data-plane engine did not stop in time");
            }
        }
    }

    fn stop(&mut self) {
        self.stop_within(Duration::from_secs(2));
    }
}

impl Drop for EngineSet {
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            self.stop();
        }
    }
}
