//! The status server: `/healthz` (the daemon's own liveness, for its Fargate
//! health check), `/status` (JSON), `/metrics` (Prometheus or OpenMetrics text), and
//! `POST /trigger?target=NAME` (bearer token). It knows nothing of the daemon:
//! `main` hands it the functions that answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What `POST /trigger` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triggered {
    Yes,
    UnknownTarget,
}

/// The two text formats of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// The Prometheus text format 0.0.4: the default, and what `promtool check metrics` reads.
    Prometheus,
    /// OpenMetrics 1.0 text, for scrapers whose `Accept` header asks for it (Prometheus does).
    OpenMetrics,
}

impl MetricsFormat {
    /// Picks the format from an `Accept` header: OpenMetrics when it is listed with a weight
    /// above zero, else the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> MetricsFormat {
        let open = accept.unwrap_or("").split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let weight = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f64>().ok())
                .unwrap_or(1.0);
            media.eq_ignore_ascii_case("application/openmetrics-text") && weight > 0.0
        });
        if open {
            MetricsFormat::OpenMetrics
        } else {
            MetricsFormat::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            MetricsFormat::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            MetricsFormat::OpenMetrics => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }
    }
}

/// The answers, provided by whoever runs the server.
#[derive(Clone)]
pub struct Sources {
    pub status_json: Arc<dyn Fn() -> String + Send + Sync>,
    /// `/metrics` in the format asked for (the `Accept` header).
    pub metrics: Arc<dyn Fn(MetricsFormat) -> String + Send + Sync>,
    pub trigger: Arc<dyn Fn(&str) -> Triggered + Send + Sync>,
    /// The bearer token `POST /trigger` requires; `None` turns the endpoint off.
    pub trigger_token: Option<String>,
}

/// A running status server.
pub struct Server {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Stops accepting, ends the open connections and waits until the server's task is gone.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The wait after a failed `accept` (e.g. EMFILE: out of file descriptors), doubling up to
/// `ACCEPT_BACKOFF_MAX`: retrying at once would spin on a failure that lasts.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

pub async fn serve(listen: SocketAddr, sources: Sources) -> std::io::Result<Server> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, Arc::new(sources), stopped));
    Ok(Server { addr, stop, task })
}

/// Accepts until told to stop; every connection is a tracked task, ended with the server.
async fn accept_loop(
    listener: TcpListener,
    sources: Arc<Sources>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.wait_for(|s| *s) => break,
        };
        // Connections that ended are not kept.
        while connections.try_join_next().is_some() {}
        let socket = match accepted {
            Ok((socket, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                socket
            }
            Err(e) => {
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "the status server cannot accept a connection; waiting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let sources = sources.clone();
        connections.spawn(async move {
            let io = hyper_util::rt::TokioIo::new(socket);
            let service = hyper::service::service_fn(move |req| {
                let sources = sources.clone();
                async move { Ok::<_, Infallible>(answer(&sources, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
    // Answers are computed at once from memory; what is left open are idle keep-alive
    // connections, which end with the server.
    connections.shutdown().await;
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a plain response is valid")
}

fn json(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        "application/json",
        serde_json::json!({ "message": message }).to_string(),
    )
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn answer<B>(s: &Sources, req: &Request<B>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/status") => reply(StatusCode::OK, "application/json", (s.status_json)()),
        (&Method::GET, "/metrics") => {
            let accept = req.headers().get("accept").and_then(|v| v.to_str().ok());
            let format = MetricsFormat::negotiate(accept);
            reply(StatusCode::OK, format.content_type(), (s.metrics)(format))
        }
        (&Method::POST, "/trigger") => {
            let Some(token) = &s.trigger_token else {
                return json(
                    StatusCode::FORBIDDEN,
                    "the trigger endpoint is off: set the token's environment variable (daemon.trigger_token_env)",
                );
            };
            let given = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| same(g, token)) {
                return json(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            }
            let target = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("target="));
            let Some(target) = target.filter(|t| !t.is_empty()) else {
                return json(
                    StatusCode::BAD_REQUEST,
                    "name the target: POST /trigger?target=NAME",
                );
            };
            match (s.trigger)(target) {
                Triggered::Yes => reply(
                    StatusCode::ACCEPTED,
                    "application/json",
                    serde_json::json!({ "triggered": target }).to_string(),
                ),
                Triggered::UnknownTarget => json(StatusCode::NOT_FOUND, "no such target"),
            }
        }
        _ => json(
            StatusCode::NOT_FOUND,
            "not found: /healthz, /status, /metrics, POST /trigger?target=NAME",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::MetricsFormat;

    #[tokio::test]
    async fn stop_ends_the_server_with_a_connection_still_open() {
        use std::sync::Arc;
        let sources = super::Sources {
            status_json: Arc::new(|| "{}".to_owned()),
            metrics: Arc::new(|_| String::new()),
            trigger: Arc::new(|_| super::Triggered::UnknownTarget),
            trigger_token: None,
        };
        let server = super::serve("127.0.0.1:0".parse().expect("address"), sources)
            .await
            .expect("serves");
        // An idle keep-alive connection, as a scraper leaves one.
        let idle = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connects");
        tokio::time::timeout(std::time::Duration::from_secs(5), server.stop())
            .await
            .expect("the server stops although a connection is open");
        drop(idle);
    }

    #[test]
    fn openmetrics_only_when_the_scraper_asks_for_it() {
        let f = MetricsFormat::negotiate;
        assert_eq!(f(None), MetricsFormat::Prometheus);
        assert_eq!(f(Some("*/*")), MetricsFormat::Prometheus);
        assert_eq!(f(Some("text/plain")), MetricsFormat::Prometheus);
        // What Prometheus 2.x sends.
        assert_eq!(
            f(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            MetricsFormat::OpenMetrics
        );
        assert_eq!(
            f(Some(
                "text/plain;version=0.0.4, application/openmetrics-text; q=0"
            )),
            MetricsFormat::Prometheus,
            "refused with q=0"
        );
    }
}
