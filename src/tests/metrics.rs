//! Tests of `runtime/metrics.rs`: real scrapes over loopback TCP, parsed
//! back with a strict exposition-format parser, and bad requests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::thread;

use super::*;

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses an exposition strictly: every line is `# HELP`, `# TYPE` or a
/// sample; label values unescaped; every sample's family has HELP and TYPE
/// lines before it.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed: Vec<(String, String)> = Vec::new();
    let mut helped = Vec::new();
    let mut out = Vec::new();
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("HELP without text");
            helped.push(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                helped.last().is_some_and(|h| h == name),
                "TYPE before HELP: {line}"
            );
            typed.push((name.to_string(), kind.to_string()));
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {line}");
        let name_end = line.find(['{', ' ']).expect(line);
        let name = &line[..name_end];
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && name.starts_with("hapair_"),
            "bad name {name}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                let eq = rest.find("=\"").expect(line);
                let key = &rest[..eq];
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                let mut chars = rest[eq + 2..].char_indices();
                let mut val = String::new();
                let end;
                loop {
                    let (i, c) = chars.next().expect("unterminated label value");
                    match c {
                        '\\' => match chars.next().unwrap().1 {
                            '\\' => val.push('\\'),
                            '"' => val.push('"'),
                            'n' => val.push('\n'),
                            e => panic!("bad escape \\{e} in {line}"),
                        },
                        '"' => {
                            end = eq + 2 + i + 1;
                            break;
                        }
                        '\n' => panic!("raw newline"),
                        c => val.push(c),
                    }
                }
                labels.push((key.to_string(), val));
                rest = &rest[end..];
                if let Some(r) = rest.strip_prefix(',') {
                    rest = r;
                } else {
                    rest = rest.strip_prefix('}').expect(line);
                    break;
                }
            }
        }
        let v = rest.strip_prefix(' ').expect(line);
        let value = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.iter().any(|(n, k)| n == f && k == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            typed.last().is_some_and(|(n, _)| n == family),
            "sample {name} outside its family's block"
        );
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    samples
        .iter()
        .find(|s| {
            let mut l = s.labels.clone();
            l.sort();
            s.name == name && l == want
        })
        .map(|s| s.value)
}

/// A server on 127.0.0.1:0 running on its own thread and runtime.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
}

fn start(metrics: Arc<Metrics>, opts: ServeOptions) -> Server {
    let (atx, arx) = std::sync::mpsc::channel();
    let (stx, srx) = tokio::sync::oneshot::channel::<()>();
    let thread = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            atx.send(l.local_addr().unwrap()).unwrap();
            serve_with(l, metrics, async move { drop(srx.await) }, opts).await
        })
    });
    Server {
        addr: arx.recv().unwrap(),
        stop: Some(stx),
        thread: Some(thread),
    }
}

impl Server {
    fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.thread.take().unwrap().join().unwrap().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Sends raw bytes, returns (status, headers, body).
fn request(addr: SocketAddr, raw: &[u8]) -> (u16, String, String) {
    let mut s = StdStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let resp = String::from_utf8(resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("no header end");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("no Content-Length")
        .parse()
        .unwrap();
    assert_eq!(len, body.len(), "Content-Length mismatch");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    (status, head.to_string(), body.to_string())
}

fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let (status, head, body) = request(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(&body)
}

#[test]
fn scrape_over_tcp_and_values_move() {
    let m = Arc::new(Metrics::new());
    let srv = start(m.clone(), ServeOptions::default());
    let s = scrape(srv.addr);
    assert_eq!(get(&s, names::FAILOVERS, &[]), Some(0.0));
    assert_eq!(
        get(&s, names::LEASE_RENEWAL_AGE, &[]),
        None,
        "no renewal yet"
    );

    m.heartbeat_rtt("lan", Duration::from_micros(300));
    m.heartbeat_rtt("lan", Duration::from_millis(3));
    m.heartbeat_loss("lan", 0.25);
    m.packet_dropped("auth");
    m.packet_dropped("auth");
    m.packet_dropped("replay");
    m.lease_renewed(
        Instant::now() - Duration::from_secs(5),
        Duration::from_millis(2),
    );
    m.failover();
    m.failover_step(FailoverStep::Fence, Duration::from_millis(1500));
    m.agent_call("pgsql", "start", "success", Duration::from_secs(3));
    m.agent_call("pgsql", "monitor", "timeout", Duration::from_secs(20));
    m.self_fence("lease");
    m.fence_attempt(1, "off");
    m.fence_attempt(2, "failed");
    let s = scrape(srv.addr);
    let v = |n, l: &[(&str, &str)]| get(&s, n, l).unwrap_or_else(|| panic!("{n} {l:?} missing"));
    assert_eq!(
        v("hapair_heartbeat_rtt_seconds_count", &[("link", "lan")]),
        2.0
    );
    assert!((v("hapair_heartbeat_rtt_seconds_sum", &[("link", "lan")]) - 0.0033).abs() < 1e-9);
    assert_eq!(
        v(
            "hapair_heartbeat_rtt_seconds_bucket",
            &[("link", "lan"), ("le", "0.0005")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "hapair_heartbeat_rtt_seconds_bucket",
            &[("link", "lan"), ("le", "0.0025")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "hapair_heartbeat_rtt_seconds_bucket",
            &[("link", "lan"), ("le", "0.005")]
        ),
        2.0
    );
    assert_eq!(v(names::HEARTBEAT_LOSS, &[("link", "lan")]), 0.25);
    assert_eq!(v(names::PACKETS_DROPPED, &[("reason", "auth")]), 2.0);
    assert_eq!(v(names::PACKETS_DROPPED, &[("reason", "replay")]), 1.0);
    let age = v(names::LEASE_RENEWAL_AGE, &[]);
    assert!((5.0..60.0).contains(&age), "age {age}");
    assert_eq!(v("hapair_lease_renewal_seconds_count", &[]), 1.0);
    assert_eq!(v(names::FAILOVERS, &[]), 1.0);
    assert_eq!(
        v(
            "hapair_failover_step_seconds_bucket",
            &[("step", "fence"), ("le", "1")]
        ),
        0.0
    );
    assert_eq!(
        v(
            "hapair_failover_step_seconds_bucket",
            &[("step", "fence"), ("le", "2.5")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "hapair_agent_call_seconds_count",
            &[("resource", "pgsql"), ("op", "start")]
        ),
        1.0
    );
    assert_eq!(
        v(
            names::AGENT_CALLS,
            &[
                ("resource", "pgsql"),
                ("op", "monitor"),
                ("outcome", "timeout")
            ]
        ),
        1.0
    );
    assert_eq!(v(names::SELF_FENCES, &[("reason", "lease")]), 1.0);
    assert_eq!(
        v(
            names::FENCE_ATTEMPTS,
            &[("level", "2"), ("outcome", "failed")]
        ),
        1.0
    );

    // values move between scrapes; the age restarts at a new renewal
    m.packet_dropped("auth");
    m.heartbeat_loss("lan", 0.0);
    m.lease_renewed(Instant::now(), Duration::from_millis(1));
    let s = scrape(srv.addr);
    assert_eq!(
        get(&s, names::PACKETS_DROPPED, &[("reason", "auth")]),
        Some(3.0)
    );
    assert_eq!(
        get(&s, names::HEARTBEAT_LOSS, &[("link", "lan")]),
        Some(0.0)
    );
    assert!(get(&s, names::LEASE_RENEWAL_AGE, &[]).unwrap() < 5.0);
    assert_eq!(
        get(&s, "hapair_lease_renewal_seconds_count", &[]),
        Some(2.0)
    );
    // an older renewal reported late does not move the age back
    m.lease_renewed(
        Instant::now() - Duration::from_secs(100),
        Duration::from_millis(1),
    );
    assert!(get(&scrape(srv.addr), names::LEASE_RENEWAL_AGE, &[]).unwrap() < 5.0);
    srv.shutdown();
}

#[test]
fn exposition_details() {
    let m = Metrics::new();
    m.agent_call(
        "we\"ird\\res\nname",
        "start",
        "ok",
        Duration::from_millis(7),
    );
    m.agent_call(
        "we\"ird\\res\nname",
        "start",
        "ok",
        Duration::from_secs(1000),
    );
    m.describe(
        "hapair_test_help",
        "line one\nback\\slash",
        Kind::Gauge,
        &[],
    );
    m.gauge_set("hapair_test_help", &[("b", "2"), ("a", "1")], f64::NAN);
    let text = m.render();
    assert!(
        text.contains(
            "hapair_agent_call_seconds_count{op=\"start\",resource=\"we\\\"ird\\\\res\\nname\"} 2\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("# HELP hapair_test_help line one\\nback\\\\slash\n"),
        "{text}"
    );
    assert!(
        text.contains("hapair_test_help{a=\"1\",b=\"2\"} NaN\n"),
        "labels sorted: {text}"
    );
    let s = parse(&text);
    let l = [("resource", "we\"ird\\res\nname"), ("op", "start")];
    // buckets are cumulative and end at +Inf == count
    let buckets: Vec<(f64, f64)> = s
        .iter()
        .filter(|x| x.name == "hapair_agent_call_seconds_bucket")
        .map(|x| {
            let le = &x.labels.iter().find(|(k, _)| k == "le").unwrap().1;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, x.value)
        })
        .collect();
    assert_eq!(buckets.len(), SLOW_BUCKETS.len() + 1);
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{buckets:?}"
    );
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, 2.0));
    assert_eq!(buckets.iter().find(|b| b.0 == 0.01).unwrap().1, 1.0);
    assert_eq!(buckets.iter().find(|b| b.0 == 300.0).unwrap().1, 1.0);
    assert!(text.contains("le=\"+Inf\"} 2\n"));
    assert_eq!(get(&s, "hapair_agent_call_seconds_sum", &l), Some(1000.007));
    // every family announces HELP and TYPE once
    for n in [
        names::HEARTBEAT_RTT,
        names::FAILOVERS,
        names::LEASE_RENEWAL_AGE,
    ] {
        assert_eq!(text.matches(&format!("# TYPE {n} ")).count(), 1);
    }
    assert!(text.contains("# TYPE hapair_failover_step_seconds histogram\n"));
    assert!(text.contains("# TYPE hapair_failovers_total counter\n"));
    assert_eq!(fmt_f64(f64::NEG_INFINITY), "-Inf");
    assert_eq!(fmt_f64(0.5), "0.5");
    assert_eq!(fmt_f64(3.0), "3");
    // value() for counters and gauges
    assert_eq!(
        m.value(
            names::AGENT_CALLS,
            &[
                ("op", "start"),
                ("resource", "we\"ird\\res\nname"),
                ("outcome", "ok")
            ]
        ),
        Some(2.0)
    );
}

#[test]
fn bad_requests() {
    let m = Arc::new(Metrics::new());
    let opts = ServeOptions {
        read_timeout: Duration::from_millis(300),
        max_request: 1024,
        ..ServeOptions::default()
    };
    let srv = start(m, opts);
    let a = srv.addr;
    let (st, head, _) = request(a, b"POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(st, 405);
    assert!(head.contains("\r\nAllow: GET"), "{head}");
    assert_eq!(request(a, b"HEAD /metrics HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(request(a, b"GET / HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(request(a, b"GET /metricsx HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(request(a, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").0, 200);
    assert_eq!(request(a, b"GET /metrics\n\n").0, 400);
    assert_eq!(request(a, b"GET /metrics HTTP/2.0\r\n\r\n").0, 400);
    assert_eq!(request(a, b"garbage\r\n\r\n").0, 400);
    assert_eq!(request(a, b"GET metrics HTTP/1.1\r\n\r\n").0, 400);
    assert_eq!(request(a, b"\xff\xfe /metrics HTTP/1.1\r\n\r\n").0, 400);
    // oversize head: 431 once the limit is reached without an end of head
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(1024, b'a');
    assert_eq!(request(a, &big).0, 431);
    // a client that sends half a request and stalls gets 408 and a close
    let began = Instant::now();
    assert_eq!(request(a, b"GET /metr").0, 408);
    assert!(began.elapsed() >= Duration::from_millis(300));
    // a client that connects and leaves does not hurt the server
    drop(StdStream::connect(a).unwrap());
    assert!(!scrape(a).is_empty());
    srv.shutdown();
}

#[test]
fn shutdown_stops_serving() {
    let m = Arc::new(Metrics::new());
    let srv = start(m, ServeOptions::default());
    let a = srv.addr;
    // a connection in progress does not hold up shutdown
    let mut idle = StdStream::connect(a).unwrap();
    idle.write_all(b"GET /").unwrap();
    thread::sleep(Duration::from_millis(50));
    srv.shutdown();
    assert!(
        StdStream::connect(a).is_err(),
        "still accepting after shutdown"
    );
    let mut buf = Vec::new();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        idle.read_to_end(&mut buf).map(|_| buf.len()).unwrap_or(0),
        0
    );
}
