//! `sluice serve`'s accept loop: hyper's HTTP/1 server over the shared axum router, with a
//! timer, so a client has a bounded time to send each request's header block (D-2).
//!
//! `axum::serve` gives hyper no timer, and hyper's header-read timeout only runs with one: a
//! client trickling its headers (slowloris) would hold a task, a socket and a header buffer of
//! up to hyper's 400 KiB for as long as it liked. The body is bounded separately
//! (`throttle.body_timeout_secs`, in the router). On AWS, API Gateway owns the connections.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits for the
/// connections in hand: requests in flight finish, idle keep-alive connections close.
///
/// `header_timeout` bounds the wait for a request's whole header block, on a new connection and
/// between requests on a kept-alive one; zero means no limit.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout((!header_timeout.is_zero()).then_some(header_timeout));
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, say: accepting again at once would spin. A
                    // connection reset before it was accepted is the client's business.
                    if !is_connection_error(&e) {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The caller's address for `client_ip`, as axum's `into_make_service_with_connect_info`
        // would insert it.
        let service = app.clone().map_request(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(remote));
            req
        });
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Timeouts, resets and malformed requests end here; hyper has already answered
            // what could be answered (400, 431) and there is nothing more to tell the client.
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    async fn server(header_timeout: Duration) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/ip",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve_http(listener, app, header_timeout, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        (addr, stop, task)
    }

    #[tokio::test]
    async fn d2_a_client_trickling_its_headers_is_cut_off_at_the_header_timeout() {
        let (addr, _stop, _task) = server(Duration::from_millis(500)).await;
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        conn.write_all(b"GET /ip HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut rest = Vec::new();
        // The server closes by itself: reading to the end cannot hang.
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest))
            .await
            .expect("the server kept waiting for the headers");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400),
            "closed after {waited:?}, before the timeout"
        );
        assert!(!String::from_utf8_lossy(&rest).contains("200 OK"), "{rest:?}");
    }

    #[tokio::test]
    async fn headers_in_time_are_served_with_the_callers_address_and_shutdown_waits_for_them() {
        let (addr, stop, task) = server(Duration::from_secs(5)).await;
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /ip HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn.write_all(b"Connection: close\r\n\r\n").await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("127.0.0.1"), "{reply}");
        // An idle kept-alive connection does not hold the shutdown up.
        let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("shutdown waited on an idle connection")
            .unwrap();
        drop(idle);
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting");
    }

    #[tokio::test]
    async fn a_zero_header_timeout_means_no_limit() {
        let (addr, _stop, _task) = server(Duration::ZERO).await;
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /ip HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_millis(800), conn.read(&mut buf)).await;
        assert!(
            read.is_err(),
            "the server closed or answered a request still in its headers: {read:?}"
        );
    }
}
