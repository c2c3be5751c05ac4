//! `hapair keygen` and `hapair heartbeat`: the heartbeat's key file, and one
//! heartbeat node in the foreground (debugging, lab measurements) printing
//! its events as JSON lines.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use hapair::keys::{self, KeyFile, KeygenOp};
use hapair::membership::{Millis, Timing};
use hapair::proto::{ClusterId, ConfigHash, KeyId, NodeId, NodeView};
use hapair::runtime::heartbeat::{Clock, Heartbeat, HeartbeatConfig, LinkConfig};

/// Arguments of `hapair keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The key file.
    #[arg(long, default_value = keys::DEFAULT_PATH)]
    file: PathBuf,
    /// Key id of the new key (1-255): with no other option, of the new
    /// file's only key (default 1); with --add, of the added key (default:
    /// the smallest free id).
    #[arg(long, value_parser = parse_key_id)]
    id: Option<KeyId>,
    /// Replace an existing file (both nodes must then get the new one).
    #[arg(long, conflicts_with_all = ["add", "activate", "retire"])]
    force: bool,
    /// Rotation step 1: add a new key, accepted but not yet sent with.
    #[arg(long, conflicts_with_all = ["activate", "retire"])]
    add: bool,
    /// Rotation step 2: send with this key id from now on.
    #[arg(long, value_name = "ID", value_parser = parse_key_id, conflicts_with_all = ["retire", "id"])]
    activate: Option<KeyId>,
    /// Rotation step 3: remove this key id (not the active one).
    #[arg(long, value_name = "ID", value_parser = parse_key_id, conflicts_with = "id")]
    retire: Option<KeyId>,
}

fn parse_key_id(s: &str) -> Result<KeyId, String> {
    s.parse::<u8>()
        .ok()
        .and_then(KeyId::new)
        .ok_or_else(|| format!("{s}: a key id is between 1 and 255"))
}

/// `hapair keygen`.
pub fn keygen(a: KeygenArgs) -> anyhow::Result<()> {
    let op = if a.add {
        KeygenOp::Add { id: a.id }
    } else if let Some(id) = a.activate {
        KeygenOp::Activate(id)
    } else if let Some(id) = a.retire {
        KeygenOp::Retire(id)
    } else {
        KeygenOp::Create {
            id: a.id,
            force: a.force,
        }
    };
    // the same owner check as the daemon's, so keygen never edits a file
    // the daemon would refuse
    let f = keys::keygen(&a.file, op, 0)?;
    let ids: Vec<String> = f.keys.iter().map(|(id, _)| id.to_string()).collect();
    println!(
        "{}: keys {}, active {} (mode 0600; copy it to the peer unchanged)",
        a.file.display(),
        ids.join(" "),
        f.active
    );
    Ok(())
}

/// Arguments of `hapair heartbeat`.
#[derive(Debug, Args)]
pub struct HeartbeatArgs {
    /// The key file (must be mode 0600 and owned by root).
    #[arg(long, default_value = keys::DEFAULT_PATH)]
    key_file: PathBuf,
    /// Cluster name (both nodes; its hash is the cluster id on the wire).
    #[arg(long)]
    cluster: String,
    /// This node's name.
    #[arg(long)]
    node: String,
    /// The peer's name.
    #[arg(long)]
    peer: String,
    /// A link: LOCAL_ADDR:PORT,PEER_ADDR:PORT[,INTERFACE]; give it once per link.
    #[arg(long = "link", required = true, value_parser = parse_link)]
    links: Vec<(SocketAddr, SocketAddr, Option<String>)>,
    /// Interval between packets on each link [default: 100ms, Timing::DEFAULT].
    #[arg(long, value_parser = parse_duration)]
    keepalive: Option<Millis>,
    /// Silence after which a link is reported late [default: 500ms].
    #[arg(long, value_parser = parse_duration)]
    warntime: Option<Millis>,
    /// Silence after which a link is down; the peer is dead when all are
    /// [default: 900ms].
    #[arg(long, value_parser = parse_duration)]
    deadtime: Option<Millis>,
    /// How long a never-heard peer is given after start [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    initdead: Option<Millis>,
    /// A file whose SHA-256 is sent as this node's config hash.
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// Print a status line (counters, states) this often.
    #[arg(long, value_parser = parse_duration)]
    status_every: Option<Millis>,
}

fn parse_duration(s: &str) -> Result<Millis, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s}: {e}"))?;
    u64::try_from(d.as_millis())
        .map(Millis)
        .map_err(|_| format!("{s}: too long"))
}

fn parse_link(s: &str) -> Result<(SocketAddr, SocketAddr, Option<String>), String> {
    let parts: Vec<&str> = s.split(',').collect();
    let (local, peer, iface) = match parts.as_slice() {
        [l, p] => (l, p, None),
        [l, p, i] if !i.is_empty() => (l, p, Some((*i).to_owned())),
        _ => {
            return Err(format!(
                "{s}: expected LOCAL_ADDR:PORT,PEER_ADDR:PORT[,INTERFACE]"
            ));
        }
    };
    let local = local.parse().map_err(|e| format!("{local}: {e}"))?;
    let peer = peer.parse().map_err(|e| format!("{peer}: {e}"))?;
    Ok((local, peer, iface))
}

fn clock_ms(id: nix::time::ClockId) -> u64 {
    nix::time::clock_gettime(id)
        .ok()
        .and_then(|t| {
            let ms = i128::from(t.tv_sec()) * 1000 + i128::from(t.tv_nsec()) / 1_000_000;
            u64::try_from(ms).ok()
        })
        .unwrap_or(0)
}

/// `hapair heartbeat`: one node in the foreground until SIGINT/SIGTERM.
pub fn heartbeat(a: HeartbeatArgs) -> anyhow::Result<()> {
    let d = Timing::DEFAULT;
    let timing = Timing {
        keepalive: a.keepalive.unwrap_or(d.keepalive),
        warntime: a.warntime.unwrap_or(d.warntime),
        deadtime: a.deadtime.unwrap_or(d.deadtime),
        initdead: a.initdead.unwrap_or(d.initdead),
    };
    timing.validate().context("timing")?;
    let key_file: KeyFile = keys::load(&a.key_file).context("refusing to start")?;
    let keyring = key_file.keyring().context("refusing to start")?;
    let config = match &a.config_file {
        Some(p) => ConfigHash::of(&std::fs::read(p).with_context(|| format!("{}", p.display()))?),
        None => ConfigHash::default(),
    };
    if a.node == a.peer {
        bail!("--node and --peer must differ");
    }
    let cfg = HeartbeatConfig {
        cluster: ClusterId::from_name(&a.cluster),
        local: NodeId::from_name(&a.node),
        peer: NodeId::from_name(&a.peer),
        timing,
        links: a
            .links
            .iter()
            .enumerate()
            .map(|(i, (local, peer, interface))| LinkConfig {
                name: format!("link{i}"),
                local: *local,
                peer: *peer,
                interface: interface.clone(),
            })
            .collect(),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        let view = NodeView {
            config,
            ..NodeView::default()
        };
        let (hb, mut handle) = Heartbeat::new(cfg, keyring, view, Clock::new()).context("refusing to start")?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        let mut status = handle.status.clone();
        let every = a.status_every;
        let printer = tokio::spawn(async move {
            let mut tick = every.map(|d| tokio::time::interval(Duration::from_millis(d.0.max(1))));
            loop {
                let line = tokio::select! {
                    e = handle.events.recv() => match e {
                        Some(e) => {
                            let mut v = serde_json::to_value(&e).unwrap_or_default();
                            v["mono_ms"] = clock_ms(nix::time::ClockId::CLOCK_MONOTONIC).into();
                            v["unix_ms"] = clock_ms(nix::time::ClockId::CLOCK_REALTIME).into();
                            v
                        }
                        None => break,
                    },
                    _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                        serde_json::json!({ "status": *status.borrow_and_update() })
                    }
                };
                println!("{line}");
            }
        });
        let final_status = hb.run(shutdown).await;
        printer.abort();
        println!("{}", serde_json::json!({ "final_status": final_status }));
        Ok(())
    })
}
