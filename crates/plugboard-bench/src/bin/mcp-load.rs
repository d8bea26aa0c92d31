//! An MCP load generator for `bench/run.sh`: N concurrent MCP sessions (rmcp's streamable-HTTP client), each calling
//! one tool in a loop; prints one JSON line with calls/s and latency percentiles.
//!
//! `--hold` instead opens N sessions (one call each, so each is known to work), writes a JSON line to
//! `--ready-file`, keeps them open for `--duration` seconds or until SIGTERM, then closes them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use futures_util::StreamExt;
use plugboard_bench::BearerHttp;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Concurrent MCP sessions calling one tool in a loop; JSON results on stdout")]
struct Args {
    /// The MCP endpoint (streamable HTTP).
    #[arg(long)]
    url: String,
    /// Bearer token to send (an agent token for Plugboard's gateway).
    #[arg(long, env = "MCP_LOAD_TOKEN")]
    token: Option<String>,
    /// The tool to call; it gets `{"text": "..."}`.
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 64)]
    sessions: usize,
    /// Seconds measured (load) or held (--hold).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of calls before the measurement starts (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Sessions opened at once while connecting.
    #[arg(long, default_value_t = 32)]
    open_concurrency: usize,
    /// Open the sessions and hold them instead of loading them.
    #[arg(long)]
    hold: bool,
    /// With --hold: where to write the JSON line once every session is open.
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    /// Worker threads (default: tokio's, one per core).
    #[arg(long)]
    threads: Option<usize>,
}

type Session = RunningService<RoleClient, ()>;

async fn open(http: BearerHttp, url: String) -> anyhow::Result<Session> {
    let config = StreamableHttpClientTransportConfig::with_uri(url);
    let transport = StreamableHttpClientTransport::with_client(http, config);
    ().serve(transport)
        .await
        .context("the MCP session did not open (initialize failed)")
}

async fn call(s: &Session, tool: &str, text: &str) -> anyhow::Result<()> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = json!({ "text": text }).as_object().cloned();
    let r = s.call_tool(params).await?;
    if r.is_error == Some(true) {
        anyhow::bail!("the tool answered an error: {:?}", r.content);
    }
    Ok(())
}

async fn open_all(args: &Args, http: &BearerHttp) -> anyhow::Result<Vec<Session>> {
    let opened: Vec<anyhow::Result<Session>> = futures_util::stream::iter(0..args.sessions)
        .map(|i| {
            let http = http.clone();
            let url = args.url.clone();
            let tool = args.tool.clone();
            async move {
                let s = open(http, url).await?;
                call(&s, &tool, &format!("hello {i}"))
                    .await
                    .context("the first call failed")?;
                Ok(s)
            }
        })
        .buffer_unordered(args.open_concurrency.max(1))
        .collect()
        .await;
    let mut sessions = Vec::with_capacity(opened.len());
    let mut first_error = None;
    let mut failed = 0usize;
    for r in opened {
        match r {
            Ok(s) => sessions.push(s),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        anyhow::bail!(
            "{failed} of {} sessions did not open; the first error: {e:#}",
            args.sessions
        );
    }
    Ok(sessions)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

async fn load(args: Args, http: BearerHttp) -> anyhow::Result<()> {
    let sessions = open_all(&args, &http).await?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.duration);
    let tool: Arc<str> = Arc::from(args.tool.as_str());
    let mut tasks = Vec::with_capacity(sessions.len());
    for (i, s) in sessions.into_iter().enumerate() {
        let tool = Arc::clone(&tool);
        tasks.push(tokio::spawn(async move {
            let text = format!("hello from session {i}");
            let mut micros: Vec<u64> = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut first_error: Option<String> = None;
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let r = call(&s, &tool, &text).await;
                let dt = t0.elapsed();
                if t0 >= measure_from {
                    match r {
                        Ok(()) => micros.push(dt.as_micros() as u64),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
            }
            let _ = s.cancel().await;
            (micros, errors, first_error)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0u64;
    let mut first_error = None;
    for t in tasks {
        let (m, e, f) = t.await.context("a session's task failed")?;
        all.extend(m);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    all.sort_unstable();
    let calls = all.len() as u64;
    let mean = if calls == 0 {
        0.0
    } else {
        all.iter().sum::<u64>() as f64 / calls as f64 / 1000.0
    };
    let out = json!({
        "url": args.url,
        "sessions": args.sessions,
        "duration_s": args.duration,
        "calls": calls,
        "errors": errors,
        "first_error": first_error,
        "calls_per_s": (calls as f64 / args.duration * 10.0).round() / 10.0,
        "p50_ms": (percentile(&all, 50.0) * 1000.0).round() / 1000.0,
        "p99_ms": (percentile(&all, 99.0) * 1000.0).round() / 1000.0,
        "mean_ms": (mean * 1000.0).round() / 1000.0,
    });
    println!("{out}");
    Ok(())
}

async fn hold(args: Args, http: BearerHttp) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let sessions = open_all(&args, &http).await?;
    let line = json!({
        "url": args.url,
        "sessions_open": sessions.len(),
        "open_s": (t0.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    })
    .to_string();
    if let Some(path) = &args.ready_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{line}\n"))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{line}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs_f64(args.duration)) => {}
        _ = term.recv() => {}
    }
    futures_util::stream::iter(sessions)
        .for_each_concurrent(args.open_concurrency.max(1), |s| async move {
            let _ = s.cancel().await;
        })
        .await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build()?;
    let http = BearerHttp::new(args.token.as_deref()).context("cannot build the HTTP client")?;
    rt.block_on(async move {
        if args.hold {
            hold(args, http).await
        } else {
            load(args, http).await
        }
    })
}
