//! `sluice serve`'s accept loop: hyper's HTTP/1 server over the shared axum router, with a
//! timer, so a client has a bounded time to send each request's header block, and a bound on
//! the connections open at once, in all and from one address (D-2).
//!
//! `axum::serve` gives hyper no timer, and hyper's header-read timeout only runs with one: a
//! client trickling its headers (slowloris) would hold a task, a socket and a header buffer of
//! up to hyper's 400 KiB for as long as it liked. Nor does it bound connections: each holds a
//! task, a file descriptor and hyper's read and write buffers (8 KiB each to start), and
//! `throttle.max_in_flight` bounds requests, not the idle connections around them. The body is
//! bounded separately (`throttle.body_timeout_secs`, in the router). On AWS, API Gateway owns
//! the connections.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How long and how many connections `serve_http` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time for a request's whole header block, on a new connection and between requests on a
    /// kept-alive one. Zero: no limit.
    pub header_timeout: Duration,
    /// Connections open at once. At the limit the server stops accepting, and new connections
    /// wait in the kernel's listen backlog until one closes, as nginx's `worker_connections`
    /// and Go's `LimitListener` do. 0: no limit.
    pub max_connections: usize,
    /// Connections open at once from one client address; beyond it a new one is closed as soon
    /// as it is accepted, so one client cannot take the whole `max_connections`. 0: no limit.
    pub max_per_address: usize,
}

/// Open connections by client address. An address leaves the map with its last connection,
/// so the map never holds more entries than there are connections.
#[derive(Debug, Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// Counts a new connection from `ip`, unless it already has `max` (at least 1) open.
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.clone(),
            ip,
        })
    }
}

/// One connection's place in its address's count, given back when the connection ends.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits for the
/// connections in hand: requests in flight finish, idle keep-alive connections close.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    let header_timeout = limits.header_timeout;
    builder
        .timer(TokioTimer::new())
        .header_read_timeout((!header_timeout.is_zero()).then_some(header_timeout));
    let connections = (limits.max_connections > 0).then(|| Arc::new(Semaphore::new(limits.max_connections)));
    let per_address = Arc::new(PerAddress::default());
    tokio::pin!(shutdown);
    loop {
        // A free slot first, then the accept: at the limit, new connections wait in the
        // kernel's backlog (and beyond it are refused there) instead of costing a task each.
        let slot = match &connections {
            Some(sem) => tokio::select! {
                permit = sem.clone().acquire_owned() => permit.ok(),
                () = &mut shutdown => break,
            },
            None => None,
        };
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
        let address_slot = if limits.max_per_address > 0 {
            match per_address.admit(remote.ip(), limits.max_per_address) {
                Some(s) => Some(s),
                None => {
                    // Closed unanswered: an HTTP answer would need the request read first.
                    tracing::debug!(client = %remote.ip(), "too many connections from one address; closed");
                    continue;
                }
            }
        } else {
            None
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
            // Held until the connection ends, whichever way.
            let _slots = (slot, address_slot);
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
        server_with(ConnectionLimits {
            header_timeout,
            max_connections: 0,
            max_per_address: 0,
        })
        .await
    }

    async fn server_with(limits: ConnectionLimits) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/ip",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve_http(listener, app, limits, async {
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

    /// Sends a request on `conn` and reads the reply's first bytes, or `None` when the server
    /// closes the connection or says nothing within `wait`.
    async fn ask(conn: &mut tokio::net::TcpStream, wait: Duration) -> Option<String> {
        if conn.write_all(b"GET /ip HTTP/1.1\r\nHost: x\r\n\r\n").await.is_err() {
            return None;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(wait, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => None,
        }
    }

    /// Whether a request on `conn` gets a 200.
    async fn served(conn: &mut tokio::net::TcpStream) -> bool {
        ask(conn, Duration::from_secs(5))
            .await
            .is_some_and(|reply| reply.starts_with("HTTP/1.1 200"))
    }

    #[tokio::test]
    async fn d2_connections_beyond_the_limit_wait_in_the_backlog_until_one_closes() {
        let (addr, _stop, _task) = server_with(ConnectionLimits {
            header_timeout: Duration::from_secs(30),
            max_connections: 2,
            max_per_address: 0,
        })
        .await;
        let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(served(&mut first).await);
        assert!(served(&mut second).await);
        // The kernel completes the handshake, but the server does not take the connection.
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            ask(&mut third, Duration::from_millis(500)).await,
            None,
            "a third connection was served"
        );
        // Still open, first and second are served again: waiting did not cost them.
        assert!(served(&mut first).await);
        drop(first);
        // Its request was sent while it waited; it is answered once a slot frees.
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
            .await
            .expect("the waiting connection was not taken when a slot freed")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn d2_a_client_address_beyond_its_connection_share_is_closed_at_once() {
        let (addr, _stop, _task) = server_with(ConnectionLimits {
            header_timeout: Duration::from_secs(30),
            max_connections: 100,
            max_per_address: 2,
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            assert!(served(&mut c).await);
            held.push(c);
        }
        let started = std::time::Instant::now();
        let mut over = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            ask(&mut over, Duration::from_secs(5)).await,
            None,
            "a third connection from one address was served"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "closed at once, not left waiting"
        );
        // A connection ending gives its address's place back.
        drop(held.pop());
        for attempt in 0.. {
            let mut again = tokio::net::TcpStream::connect(addr).await.unwrap();
            match ask(&mut again, Duration::from_secs(5)).await {
                Some(reply) => {
                    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
                    break;
                }
                // The server may not have seen the close yet.
                None if attempt < 50 => tokio::time::sleep(Duration::from_millis(20)).await,
                None => panic!("the address never got its place back"),
            }
        }
    }

    #[test]
    fn an_address_leaves_the_table_with_its_last_connection() {
        let table = Arc::new(PerAddress::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = table.admit(ip, 2).unwrap();
        let b = table.admit(ip, 2).unwrap();
        assert!(table.admit(ip, 2).is_none());
        assert!(
            table.admit("192.0.2.8".parse().unwrap(), 2).is_some(),
            "other addresses are not held up"
        );
        drop(a);
        let c = table.admit(ip, 2).unwrap();
        drop((b, c));
        assert!(table.open.lock().is_empty(), "{:?}", table.open.lock());
    }
}
