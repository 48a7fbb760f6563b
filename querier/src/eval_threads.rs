//! Long-lived threads with large stacks that run query evaluations (see `api::evaluate`).
//! Evaluation recurses per AST level, so it needs a bigger stack than the runtime's workers
//! have; a thread kept for the next query also keeps its allocator caches, so a query reuses
//! the memory the previous ones freed instead of touching fresh pages (as a thread started
//! per query would).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of evaluation threads fed through one queue.
pub struct EvalThreads {
    tx: Mutex<Sender<Job>>,
}

impl EvalThreads {
    /// Starts `threads` threads with `stack_bytes` stacks (only the pages used are committed).
    pub fn start(threads: usize, stack_bytes: usize) -> std::io::Result<Self> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx: Arc<Mutex<Receiver<Job>>> = rx.clone();
            std::thread::Builder::new()
                .name(format!("muninn-query-{i}"))
                .stack_size(stack_bytes)
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panicking evaluation fails its query (its answer channel drops),
                        // not the thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Self { tx: Mutex::new(tx) })
    }

    /// Queues `job` for the next free thread.
    pub fn run(&self, job: Job) -> Result<(), String> {
        self.tx
            .lock()
            .map_err(|_| "evaluation queue poisoned".to_string())?
            .send(job)
            .map_err(|_| "evaluation threads are gone".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_and_a_panic_leaves_the_thread_serving() {
        let pool = EvalThreads::start(1, 1 << 20).unwrap();
        pool.run(Box::new(|| panic!("boom"))).unwrap();
        let (tx, rx) = channel();
        pool.run(Box::new(move || tx.send(7).unwrap())).unwrap();
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(5)), Ok(7));
    }
}
