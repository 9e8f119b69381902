//! A fake ActiveGate: an HTTPS server on the task's own loopback address,
//! answering `GET /rest/health` and `GET /rest/state` as its image's
//! behaviour dictates at this moment of simulated time.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::Shared;
use super::state::{Health, Mode};

/// Binds the task's address and serves until the returned task is aborted.
pub fn spawn(
    shared: Arc<Shared>,
    task_id: String,
    ip: IpAddr,
    port: u16,
    mode: Mode,
) -> std::io::Result<JoinHandle<()>> {
    let std_listener = std::net::TcpListener::bind(SocketAddr::new(ip, port))?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    if mode == Mode::Hangs {
        // Accept, then never read nor answer; connections close when the task stops.
        return Ok(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        }));
    }
    let authority = if mode == Mode::WrongCertificate {
        &shared.rogue_ca
    } else {
        &shared.ca
    };
    let config = authority
        .server_config(ip)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let acceptor = TlsAcceptor::from(config);
    Ok(tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let shared = shared.clone();
            let task_id = task_id.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(socket).await else {
                    return;
                };
                let io = hyper_util::rt::TokioIo::new(tls);
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    let task_id = task_id.clone();
                    async move {
                        // A cut path: hold the answer until it is restored (the prober's
                        // timeout fires first).
                        while shared
                            .unreachable
                            .load(std::sync::atomic::Ordering::Relaxed)
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                        Ok::<_, Infallible>(answer(&shared, &task_id, &req))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    }))
}

fn answer<B>(shared: &Shared, task_id: &str, req: &Request<B>) -> Response<Full<Bytes>> {
    let health = shared.health_of(task_id);
    let (status, body) = match (req.uri().path(), health) {
        ("/rest/health" | "/rest/state", Some(Health::Up)) => (StatusCode::OK, "RUNNING"),
        ("/rest/health" | "/rest/state", Some(Health::Starting)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "STARTING")
        }
        ("/rest/health" | "/rest/state", _) => (StatusCode::SERVICE_UNAVAILABLE, "FAILING"),
        _ => (StatusCode::NOT_FOUND, "not found"),
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("a static response is valid")
}
