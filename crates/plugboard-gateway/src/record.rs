//! Recording `tools/call`s: metrics at once, the audit entry through a bounded queue that a few writers drain in
//! batches (one transaction, so one sync to disk, for every entry waiting), so a slow database slows the calls that
//! finish (backpressure) instead of growing memory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Mutex, Notify};

use crate::ports::{AuditLog, Caller, GatewayCall, Metrics, Outcome, Via};

/// Audit entries waiting for the database at most.
const QUEUE: usize = 4096;
/// Audit transactions in flight at most (SQLite takes one writer at a time anyway; batching does the rest).
const WRITERS: usize = 2;
/// Entries written in one transaction at most.
const BATCH: usize = 256;

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<GatewayCall>,
    metrics: Arc<dyn Metrics>,
    flow: Arc<Flow>,
}

/// What [`Recorder::flush`] needs: the entries queued and not yet written, and a way to cut the writers' linger.
#[derive(Default)]
struct Flow {
    /// Entries accepted into the queue whose write has not finished (written or given up on).
    unwritten: AtomicUsize,
    /// A flush is waiting: writers do not linger.
    flushing: AtomicBool,
    /// Wakes writers that linger when a flush begins.
    hurry: Notify,
}

/// How long a writer waits, after the first entry of a batch, for more to join it. Under load a transaction then
/// carries many entries instead of a few (a commit, with its sync to disk, costs about as much as many inserts):
/// at 50 ms rather than 5, the relay spends about 6% less CPU per call at a few thousand calls a second, where
/// SQLite's commits had taken about a tenth of it. An entry reaches the log this much later at most (a graceful
/// stop does not wait it out: [`Recorder::flush`]).
const LINGER: Duration = Duration::from_millis(50);
/// How often [`Recorder::flush`] looks whether the writers are done.
const FLUSH_POLL: Duration = Duration::from_millis(2);

/// Takes what is waiting: at least one entry (waiting for it), at most [`BATCH`]. `None` once the queue is closed.
async fn next_batch(
    rx: &Mutex<mpsc::Receiver<GatewayCall>>,
    flow: &Flow,
) -> Option<Vec<GatewayCall>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    if rx.len() < BATCH - 1 && !flow.flushing.load(Ordering::Acquire) {
        tokio::select! {
            _ = tokio::time::sleep(LINGER) => {}
            _ = flow.hurry.notified() => {}
        }
    }
    let mut batch = Vec::with_capacity(rx.len().min(BATCH - 1) + 1);
    batch.push(first);
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(call) => batch.push(call),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Writes a batch; when the transaction fails, each entry on its own, so one entry the database refuses does not
/// take the others with it.
async fn write(audit: &dyn AuditLog, batch: Vec<GatewayCall>) {
    if batch.len() > 1 && audit.gateway_calls(&batch).await.is_ok() {
        return;
    }
    for call in batch {
        if let Err(e) = audit.gateway_calls(std::slice::from_ref(&call)).await {
            tracing::error!(
                integration_id = %call.integration_id,
                tool = %call.tool,
                outcome = call.outcome.as_str(),
                error = %e,
                "could not write the gateway_call audit entry; check the database"
            );
        }
    }
}

impl Recorder {
    /// Starts the audit writers (needs a Tokio runtime).
    pub fn start(audit: Arc<dyn AuditLog>, metrics: Arc<dyn Metrics>) -> Recorder {
        let (tx, rx) = mpsc::channel::<GatewayCall>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let flow = Arc::new(Flow::default());
        for _ in 0..WRITERS {
            let (rx, audit, flow) = (Arc::clone(&rx), Arc::clone(&audit), Arc::clone(&flow));
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&rx, &flow).await {
                    let n = batch.len();
                    write(audit.as_ref(), batch).await;
                    flow.unwritten.fetch_sub(n, Ordering::AcqRel);
                }
            });
        }
        Recorder { tx, metrics, flow }
    }

    /// Waits until every entry recorded so far is written (or given up on, and logged), at most `within`; the
    /// writers stop lingering meanwhile. Returns how many are still unwritten (0: all of them are in the log). For
    /// a graceful shutdown, after the last request: what was answered is in the audit log when the process exits.
    pub async fn flush(&self, within: Duration) -> usize {
        let flow = &self.flow;
        flow.flushing.store(true, Ordering::Release);
        flow.hurry.notify_waiters();
        let deadline = tokio::time::Instant::now() + within;
        let left = loop {
            let left = flow.unwritten.load(Ordering::Acquire);
            if left == 0 || tokio::time::Instant::now() >= deadline {
                break left;
            }
            tokio::time::sleep(FLUSH_POLL).await;
        };
        flow.flushing.store(false, Ordering::Release);
        left
    }

    fn observe(&self, call: &GatewayCall) {
        self.metrics
            .gateway_call(&call.integration_id, call.outcome, call.duration);
        tracing::debug!(
            integration_id = %call.integration_id,
            tool = %call.tool,
            outcome = call.outcome.as_str(),
            duration_ms = call.duration.as_millis() as u64,
            "gateway tools/call"
        );
    }

    /// Records a call, waiting for room in the audit queue.
    pub async fn record(&self, call: GatewayCall) {
        self.observe(&call);
        self.flow.unwritten.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(call).await.is_err() {
            self.flow.unwritten.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(
                "the gateway's audit writer has stopped; a gateway_call entry was not written"
            );
        }
    }

    /// Records a call without waiting (from a `Drop`): when the queue is full the entry is dropped, and logged.
    pub fn record_now(&self, call: GatewayCall) {
        self.observe(&call);
        self.flow.unwritten.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.tx.try_send(call) {
            self.flow.unwritten.fetch_sub(1, Ordering::AcqRel);
            let call = match e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            };
            tracing::error!(
                integration_id = %call.integration_id,
                tool = %call.tool,
                outcome = call.outcome.as_str(),
                "the gateway's audit queue is full; this gateway_call entry was dropped"
            );
        }
    }
}

/// Who calls which integration through which endpoint: everything a record needs but the tool and the outcome.
#[derive(Clone)]
pub struct CallSite {
    pub caller: Caller,
    pub workspace_id: String,
    pub integration_id: String,
    pub via: Via,
    pub recorder: Recorder,
}

impl CallSite {
    pub fn call(&self, tool: &str, outcome: Outcome, started: Instant) -> GatewayCall {
        GatewayCall {
            caller: self.caller.clone(),
            workspace_id: self.workspace_id.clone(),
            integration_id: self.integration_id.clone(),
            tool: tool.to_owned(),
            outcome,
            duration: started.elapsed(),
            via: self.via.clone(),
        }
    }

    pub async fn record(&self, tool: &str, outcome: Outcome, started: Instant) {
        self.recorder
            .record(self.call(tool, outcome, started))
            .await;
    }

    pub fn record_now(&self, tool: &str, outcome: Outcome, started: Instant) {
        self.recorder.record_now(self.call(tool, outcome, started));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Mutex as StdMutex;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::CallerKind;

    /// An audit log that takes `delay` per transaction, or never answers (`None`).
    struct SlowLog {
        delay: Option<Duration>,
        written: StdMutex<Vec<String>>,
    }

    #[async_trait]
    impl AuditLog for SlowLog {
        async fn gateway_calls(&self, calls: &[GatewayCall]) -> Result<(), String> {
            match self.delay {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
            let mut w = self.written.lock().unwrap();
            w.extend(calls.iter().map(|c| c.tool.clone()));
            Ok(())
        }
    }

    struct NoMetrics;

    impl Metrics for NoMetrics {
        fn gateway_call(&self, _: &str, _: Outcome, _: Duration) {}
    }

    fn call(tool: &str) -> GatewayCall {
        GatewayCall {
            caller: Caller {
                token_id: "tok".into(),
                kind: CallerKind::Agent,
            },
            workspace_id: "ws".into(),
            integration_id: "int".into(),
            tool: tool.into(),
            outcome: Outcome::Ok,
            duration: Duration::from_millis(1),
            via: Via::Passthrough,
        }
    }

    fn recorder(delay: Option<Duration>) -> (Recorder, Arc<SlowLog>) {
        let log = Arc::new(SlowLog {
            delay,
            written: StdMutex::new(Vec::new()),
        });
        let audit: Arc<dyn AuditLog> = log.clone();
        (Recorder::start(audit, Arc::new(NoMetrics)), log)
    }

    #[tokio::test]
    async fn a_flush_returns_once_every_recorded_call_is_in_the_audit_log() {
        let (rec, log) = recorder(Some(Duration::from_millis(20)));
        for i in 0..10 {
            rec.record(call(&format!("tool{i}"))).await;
        }
        rec.record_now(call("dropped-by-the-agent"));
        assert_eq!(rec.flush(Duration::from_secs(30)).await, 0);
        let mut written = log.written.lock().unwrap().clone();
        written.sort();
        assert_eq!(written.len(), 11, "{written:?}");
        assert!(written.contains(&"dropped-by-the-agent".to_owned()));
    }

    // Paused time: the clock is virtual and moves only when every task waits, so the elapsed time below says
    // whether the flush cut the linger short or sat it out, whatever the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn a_flush_cuts_the_writers_linger_short() {
        let (rec, log) = recorder(Some(Duration::ZERO));
        rec.record(call("one")).await;
        // Let a writer take the entry and start lingering on it.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let started = tokio::time::Instant::now();
        assert_eq!(rec.flush(Duration::from_secs(30)).await, 0);
        assert_eq!(log.written.lock().unwrap().len(), 1);
        assert!(started.elapsed() < LINGER, "{:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flush_against_a_database_that_never_answers_gives_up_and_says_how_many_are_left() {
        let (rec, log) = recorder(None);
        for i in 0..3 {
            rec.record(call(&format!("tool{i}"))).await;
        }
        assert_eq!(rec.flush(Duration::from_millis(200)).await, 3);
        assert!(log.written.lock().unwrap().is_empty());
    }
}
