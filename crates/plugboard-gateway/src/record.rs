//! Recording `tools/call`s: metrics at once, the audit entry through a bounded queue that a few writers drain in
//! batches (one transaction, so one sync to disk, for every entry waiting), so a slow database slows the calls that
//! finish (backpressure) instead of growing memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Mutex};

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
}

/// How long a writer waits, after the first entry of a batch, for more to join it. Under load a transaction then
/// carries many entries instead of a few (a commit, with its sync to disk, costs about as much as many inserts);
/// an entry reaches the log this much later at most.
const LINGER: Duration = Duration::from_millis(5);

/// Takes what is waiting: at least one entry (waiting for it), at most [`BATCH`]. `None` once the queue is closed.
async fn next_batch(rx: &Mutex<mpsc::Receiver<GatewayCall>>) -> Option<Vec<GatewayCall>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    if rx.len() < BATCH - 1 {
        tokio::time::sleep(LINGER).await;
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
        for _ in 0..WRITERS {
            let (rx, audit) = (Arc::clone(&rx), Arc::clone(&audit));
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&rx).await {
                    write(audit.as_ref(), batch).await;
                }
            });
        }
        Recorder { tx, metrics }
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
        if self.tx.send(call).await.is_err() {
            tracing::error!(
                "the gateway's audit writer has stopped; a gateway_call entry was not written"
            );
        }
    }

    /// Records a call without waiting (from a `Drop`): when the queue is full the entry is dropped, and logged.
    pub fn record_now(&self, call: GatewayCall) {
        self.observe(&call);
        if let Err(e) = self.tx.try_send(call) {
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
