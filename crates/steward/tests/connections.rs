//! The gateway's server limits against the real `steward run`: a slowloris
//! head, a stalled body, idle and never-used connections are closed by the
//! server, and the connection cap never starves a real call. Timeouts are
//! configured short (a second or two), so nothing here sleeps long.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{DEFAULT_TOOLS, Env};
use reqwest::Method;

/// Short timeouts: a head must arrive within 1 s, a body may pause 1 s, an
/// idle connection waits 2 s.
const SHORT: &str = "header_timeout = \"1s\"\nbody_timeout = \"1s\"\nkeepalive_timeout = \"2s\"\n";

/// How long a test waits for the server to close before it fails: well past
/// every configured timeout, far below the 45 s the issue measured.
const CLOSE_WITHIN: Duration = Duration::from_secs(8);

#[expect(clippy::unwrap_used, reason = "a test helper: a failed step is a failed test")]
fn connect(env: &Env) -> TcpStream {
    let stream = TcpStream::connect(env.addr.as_deref().unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    stream
}

/// Reads until the server closes the connection (or `CLOSE_WITHIN`), while
/// `each_tick` may write more; returns what was read and when it closed.
fn until_closed(
    stream: &mut TcpStream,
    mut each_tick: impl FnMut(&mut TcpStream) -> bool,
) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < CLOSE_WITHIN {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&read).into_owned(), Some(started.elapsed())),
            Ok(n) => read.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (String::from_utf8_lossy(&read).into_owned(), Some(started.elapsed())),
        }
        if !each_tick(stream) {
            return (String::from_utf8_lossy(&read).into_owned(), Some(started.elapsed()));
        }
    }
    (String::from_utf8_lossy(&read).into_owned(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_stalled_bodies_and_idle_connections_are_closed() {
    let mut env = Env::with_gateway(SHORT, DEFAULT_TOOLS).await;
    env.start();

    // Slowloris: a header line every 200 ms never completes the head.
    let mut slow = connect(&env);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (_, closed) = until_closed(&mut slow, |s| s.write_all(b"X-Slow: 1\r\n").is_ok());
    let closed = closed.expect("a head trickling in was never cut");
    assert!(closed >= Duration::from_millis(800), "cut after {closed:?}, before header_timeout");

    // A body that stalls after 10 of 100 bytes: 408, then closed.
    let mut stalled = connect(&env);
    let head = format!(
        "POST /api/social/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n0123456789",
        env.token
    );
    stalled.write_all(head.as_bytes()).unwrap();
    let (answer, closed) = until_closed(&mut stalled, |_| true);
    assert!(closed.is_some(), "a stalled body kept its connection");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");

    // Idle keep-alive: one request answered, then silence.
    let mut idle = connect(&env);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (answer, closed) = until_closed(&mut idle, |_| true);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"), "{answer}");
    let closed = closed.expect("an idle keep-alive connection stayed open");
    assert!(closed >= Duration::from_millis(1_500), "closed after {closed:?}, before keepalive_timeout");

    // Connected, never a byte.
    let mut silent = connect(&env);
    let (_, closed) = until_closed(&mut silent, |_| true);
    assert!(closed.is_some(), "a silent connection stayed open");

    // Real calls are unaffected.
    assert_eq!(env.req(Method::GET, "/api/social/api/v1/statuses").send().await.unwrap().status(), 200);
    let metrics = env.client().get(env.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for reason in ["header_timeout", "keepalive_timeout"] {
        assert!(
            metrics.contains(&format!("steward_gateway_connections_closed_total{{reason=\"{reason}\"}}")),
            "{reason} not counted:\n{metrics}"
        );
    }
    env.stop(false);
    env.assert_no_secret_leaked();
}

/// With `ulimit -n 256`, 300 idle connections made real calls time out. At
/// the cap, the longest-idle connection now makes room for a new one; when
/// every connection is busy, the new one waits its turn instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_never_starves_a_real_call() {
    const CAP: usize = 8;
    let gateway = format!("max_connections = {CAP}\nbody_timeout = \"2s\"\nkeepalive_timeout = \"60s\"\n");
    let mut env = Env::with_gateway(&gateway, DEFAULT_TOOLS).await;
    env.start();

    // Three times the cap in idle connections (the keep-alive timeout is a minute).
    let idle: Vec<TcpStream> = (0..3 * CAP).map(|_| connect(&env)).collect();
    let started = Instant::now();
    let response = env.req(Method::GET, "/api/social/api/v1/statuses").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(10), "the real call waited {:?}", started.elapsed());
    let metrics = env.client().get(env.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("steward_gateway_connections_closed_total{reason=\"evicted\"}"), "{metrics}");
    drop(idle);

    // Every slot busy (bodies stalled): the next call waits for a slot, then succeeds.
    let busy: Vec<TcpStream> = (0..CAP)
        .map(|_| {
            let mut stream = connect(&env);
            let head = format!(
                "POST /api/social/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n01",
                env.token
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = env.req(Method::POST, "/api/social/echo").body("real").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "real");
    drop(busy);
    env.stop(false);
    env.assert_no_secret_leaked();
}
