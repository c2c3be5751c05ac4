//! `hapair agent`: try a resource agent by hand, the way the daemon runs it
//! (same environment, process group, timeout handling and result
//! classification, through the `ra` crate), as `crm_resource --force-*` and
//! `ocf-tester` are used with Pacemaker.
//!
//! - `hapair agent run AGENT ACTION [--param K=V]... [--timeout DUR]
//!   [--check-level N] [--json]`: one action; prints the typed result,
//!   recovery class, exit reason, timing and captured output. Parameters are
//!   checked against the agent's meta-data first (errors refuse the run
//!   unless `--skip-validation`); the timeout defaults to the agent's hint.
//!   Exit status: the action's OCF code (LSB/systemd mapped; a timeout or
//!   signal is 1, a missing agent 5, a non-executable one 4, as Pacemaker
//!   reports them), or 125 when hapair could not run the action at all.
//! - `hapair agent list [--json]`: OCF agents, LSB scripts, systemd units.
//! - `hapair agent meta AGENT [--json]`: parameters (type, default,
//!   required…) and action timeouts/intervals.
//!
//! Arguments are parsed in two stages: clap's [`RunArgs`] first, then
//! [`plan`] (pure, unit-tested) turns them into an `ra::Request` and a
//! runner configuration.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use ra::{
    Action, Agent, AgentResult, MetaData, Observed, ParamProblem, Recovery, Request, Role, Runner,
    RunnerConfig, Verdict,
};

/// Exit status when hapair itself could not run the action (bad arguments,
/// parameters refused, systemd not running, meta-data unreadable); chosen
/// outside the OCF codes, as `timeout(1)` and `env(1)` use it.
const EXIT_CANNOT_RUN: u8 = 125;

/// Timeout when neither `--timeout` nor the agent's meta-data gives one
/// (Pacemaker's default operation timeout).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// `hapair agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Run one action of an agent exactly as the daemon will, and print the
    /// typed result, recovery class, exit reason, timing and output.
    ///
    /// AGENT is ocf:PROVIDER:TYPE, lsb:NAME or systemd:UNIT; ACTION is start,
    /// stop, monitor (a probe unless --interval is given), promote, demote,
    /// notify, reload-agent, validate-all, meta-data or another action the
    /// agent has. Exit status: the OCF code (a timeout or signal is 1, a
    /// missing agent 5), or 125 if hapair could not run it at all.
    Run(Box<RunArgs>),
    /// List the installed agents: OCF agents, LSB init scripts and (where
    /// systemd runs) service units.
    List {
        #[command(flatten)]
        common: CommonArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an agent's parameters (type, default, required, …) and its
    /// actions' timeouts, intervals, depths and roles.
    Meta {
        /// ocf:PROVIDER:TYPE, lsb:NAME or systemd:UNIT.
        agent: String,
        #[command(flatten)]
        common: CommonArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where agents are.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// OCF root: OCF agents are OCF_ROOT/resource.d/PROVIDER/TYPE.
    #[arg(long, env = "OCF_ROOT", default_value = "/usr/lib/ocf")]
    pub ocf_root: PathBuf,
    /// Directory of LSB init scripts.
    #[arg(long, default_value = "/etc/init.d")]
    pub lsb_dir: PathBuf,
}

/// The role a recurring monitor expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Running (unpromoted): rc 0 is success.
    Started,
    /// Promoted: rc 8 is success.
    Promoted,
    /// Stopped: rc 7 is success.
    Stopped,
}

/// `hapair agent run` arguments, as typed.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// ocf:PROVIDER:TYPE, lsb:NAME or systemd:UNIT.
    pub agent: String,
    /// The action to run.
    pub action: String,
    /// An instance parameter (OCF_RESKEY_KEY); repeat for more.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// A meta attribute (OCF_RESKEY_CRM_meta_KEY); repeat for more.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Resource name (OCF_RESOURCE_INSTANCE); default: the agent's type.
    #[arg(short = 'r', long)]
    pub resource: Option<String>,
    /// Timeout, e.g. 20s, 2min (default: the agent's meta-data hint, else 20s).
    #[arg(short = 't', long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Interval of a recurring monitor (0, the default, makes it a probe).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub interval: Duration,
    /// OCF_CHECK_LEVEL for monitor and validate-all (0, 10, 20).
    #[arg(long, value_name = "N")]
    pub check_level: Option<u32>,
    /// Role a recurring monitor expects (decides how its code reads).
    #[arg(long, value_enum, default_value = "started")]
    pub role: RoleArg,
    /// Run the agent inside this network namespace (ip netns exec NS).
    #[arg(long, value_name = "NS")]
    pub netns: Option<String>,
    /// This node's name (OCF_RESKEY_CRM_meta_on_node); default: the hostname.
    #[arg(long)]
    pub node: Option<String>,
    /// Time between SIGTERM and SIGKILL to a timed-out agent's process group.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub kill_grace: Duration,
    /// Run even if the parameters fail the meta-data checks.
    #[arg(long)]
    pub skip_validation: bool,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn key_values(what: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            bail!("{what} {item:?} is not KEY=VALUE");
        };
        if k.is_empty() {
            bail!("{what} {item:?} has an empty name");
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            bail!("{what} {k} given twice");
        }
    }
    Ok(out)
}

fn runner_config(common: &CommonArgs) -> RunnerConfig {
    RunnerConfig {
        ocf_root: common.ocf_root.clone(),
        lsb_dir: common.lsb_dir.clone(),
        ..RunnerConfig::default()
    }
}

/// A validated `agent run`: the request (timeout still to be settled from
/// meta-data when `timeout` is `None`) and the runner settings.
#[derive(Debug)]
pub struct Plan {
    /// The request; its timeout is a placeholder while `timeout` is `None`.
    pub request: Request,
    /// `--timeout`, if given.
    pub timeout: Option<Duration>,
    /// Runner settings.
    pub config: RunnerConfig,
}

/// Turns the arguments into a request (pure).
pub fn plan(args: &RunArgs) -> Result<Plan> {
    let agent: Agent = args.agent.parse()?;
    let action: Action = args.action.parse()?;
    if args.timeout.is_some_and(|t| t.is_zero()) {
        bail!("--timeout must be more than zero");
    }
    if !args.interval.is_zero() && action != Action::Monitor {
        bail!("--interval only applies to monitor (it makes it a recurring monitor)");
    }
    let resource = args
        .resource
        .clone()
        .unwrap_or_else(|| agent.kind().to_string());
    let mut request = Request::new(
        &resource,
        agent,
        action,
        args.timeout.unwrap_or(DEFAULT_TIMEOUT),
    );
    request.params = key_values("--param", &args.params)?;
    request.meta = key_values("--meta", &args.meta)?;
    request.interval = args.interval;
    request.check_level = args.check_level;
    request.netns = args.netns.clone();
    request.expect = match args.role {
        RoleArg::Started => Role::Started,
        RoleArg::Promoted => Role::Promoted,
        RoleArg::Stopped => Role::Stopped,
    };
    let mut config = runner_config(&args.common);
    config.kill_grace = args.kill_grace;
    if let Some(node) = &args.node {
        config.node_name = node.clone();
    }
    Ok(Plan {
        request,
        timeout: args.timeout,
        config,
    })
}

/// Entry point of `hapair agent`.
pub fn main(cmd: AgentCmd) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hapair: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let result = rt.block_on(async {
        match cmd {
            AgentCmd::Run(args) => run(&args, &mut stdout).await,
            AgentCmd::List { common, json } => list(&common, json, &mut stdout).await.map(|()| 0),
            AgentCmd::Meta {
                agent,
                common,
                json,
            } => meta(&agent, &common, json, &mut stdout).await.map(|()| 0),
        }
    });
    let flushed = stdout.flush();
    match result.and_then(|code| flushed.map(|()| code).map_err(Into::into)) {
        Ok(code) => ExitCode::from(code),
        // Output cut short by a closed pipe (`| head`): not an error.
        Err(e)
            if e.chain().any(|c| {
                let kind = c
                    .downcast_ref::<std::io::Error>()
                    .map(std::io::Error::kind)
                    .or_else(|| c.downcast_ref::<serde_json::Error>()?.io_error_kind());
                kind == Some(std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hapair: {e:#}");
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

/// Runs the action; returns the exit status (the OCF code).
pub async fn run(args: &RunArgs, out: &mut dyn Write) -> Result<u8> {
    let Plan {
        mut request,
        timeout,
        config,
    } = plan(args)?;
    let runner = Runner::new(config)?;
    let is_ocf = matches!(request.agent, Agent::Ocf { .. });
    // Meta-data for parameter checks and the default timeout (OCF agents;
    // for LSB/systemd it only gives the standard timeouts).
    if request.action != Action::MetaData {
        match runner.meta_data(&request.agent).await {
            Ok(md) => {
                if is_ocf {
                    let problems = md.check_params(&request.params);
                    for p in &problems {
                        let level = if p.is_error() { "error" } else { "warning" };
                        eprintln!("hapair: {level}: {p}");
                    }
                    if !args.skip_validation && problems.iter().any(ParamProblem::is_error) {
                        bail!(
                            "the parameters do not match {}'s meta-data (use --skip-validation to run anyway)",
                            request.agent
                        );
                    }
                }
                if timeout.is_none() {
                    let role = (!request.interval.is_zero()).then_some(request.expect);
                    if let Some(t) = md.timeout_for(&request.action, role, request.check_level) {
                        request.timeout = t;
                    }
                }
            }
            // Not installed: run anyway, the result says so (rc 5).
            Err(ra::Error::NotInstalled { .. }) => {}
            Err(e @ ra::Error::SystemdUnavailable(_)) => return Err(e.into()),
            Err(e) => eprintln!(
                "hapair: warning: {e}; running without parameter checks, timeout {}",
                humantime::format_duration(request.timeout)
            ),
        }
    }
    let result = runner
        .run(&request)
        .await
        .with_context(|| format!("{} {}", request.agent, request.action))?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &result)?;
        writeln!(out)?;
    } else {
        print_result(&request, &result, out)?;
    }
    Ok(result.rc.code())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn verdict_text(r: &AgentResult) -> String {
    let c = &r.classification;
    let mut s = match c.verdict {
        Verdict::Success => "success".to_string(),
        Verdict::Ignored => "failed, but Pacemaker ignores it (no recovery)".to_string(),
        Verdict::Failed(Recovery::Soft) => "FAILED, soft: restart or move".to_string(),
        Verdict::Failed(Recovery::Hard) => {
            "FAILED, hard: move, never retry on this node until cleanup".to_string()
        }
        Verdict::Failed(Recovery::Fatal) => {
            "FAILED, fatal: stop everywhere, never start anywhere".to_string()
        }
    };
    if c.is_failed_stop() {
        s.push_str(" (a failed stop: the daemon fences or blocks)");
    }
    if let Some(o) = c.observed {
        s.push_str(match o {
            Observed::Stopped => "; resource stopped",
            Observed::Started => "; resource running",
            Observed::Promoted => "; resource running, promoted",
            Observed::FailedPromoted => "; resource promoted but failed",
        });
    }
    if c.degraded {
        s.push_str(" (degraded)");
    }
    s
}

fn print_stream(out: &mut dyn Write, name: &str, c: &ra::Captured) -> Result<()> {
    if c.is_empty() {
        writeln!(out, "{name}: (empty)")?;
        return Ok(());
    }
    let omitted = if c.is_complete() {
        String::new()
    } else {
        format!(", {} omitted", c.omitted())
    };
    writeln!(out, "{name} ({} bytes{omitted}):", c.total)?;
    for line in c.text().lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

fn print_result(req: &Request, r: &AgentResult, out: &mut dyn Write) -> Result<()> {
    let kind = if req.is_probe() {
        " (probe)".to_string()
    } else if !req.interval.is_zero() {
        format!(
            " (recurring, every {}, expecting {:?})",
            humantime::format_duration(req.interval),
            req.expect
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        "{} {}{kind}, resource {}, timeout {}",
        r.agent,
        r.key.action,
        r.key.resource,
        humantime::format_duration(r.timing.timeout)
    )?;
    writeln!(out, "command: {}", r.argv.join(" "))?;
    writeln!(out, "result:  rc {} ({})", r.rc, r.exec)?;
    writeln!(out, "verdict: {}", verdict_text(r))?;
    writeln!(
        out,
        "reason:  {}",
        r.exit_reason.as_deref().unwrap_or("(none)")
    )?;
    let t = &r.timing;
    writeln!(
        out,
        "timing:  {} total; agent {}; runner {} (prepare {}, spawn {}, drain {})",
        ms(t.elapsed),
        ms(t.run),
        ms(t.overhead()),
        ms(t.prepare),
        ms(t.spawn),
        ms(t.drain)
    )?;
    print_stream(out, "stdout", &r.stdout)?;
    print_stream(out, "stderr", &r.stderr)?;
    Ok(())
}

/// `hapair agent list`.
pub async fn list(common: &CommonArgs, json: bool, out: &mut dyn Write) -> Result<()> {
    let runner = Runner::new(runner_config(common))?;
    let l = runner.list().await?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &l)?;
        writeln!(out)?;
        return Ok(());
    }
    for a in l.ocf.iter().chain(&l.lsb).chain(&l.systemd) {
        writeln!(out, "{a}")?;
    }
    if let Some(why) = &l.systemd_unavailable {
        writeln!(out, "# systemd units: {why}")?;
    }
    Ok(())
}

fn dur(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_string(),
        |d| humantime::format_duration(d).to_string(),
    )
}

fn print_meta(agent: &Agent, md: &MetaData, out: &mut dyn Write) -> Result<()> {
    let mut versions = Vec::new();
    if let Some(v) = &md.agent_version {
        versions.push(format!("agent version {v}"));
    }
    if let Some(v) = &md.ocf_version {
        versions.push(format!("OCF {v}"));
    }
    let versions = if versions.is_empty() {
        String::new()
    } else {
        format!(" ({})", versions.join(", "))
    };
    writeln!(out, "{agent}{versions}: {}", md.shortdesc)?;
    writeln!(out)?;
    if md.parameters.is_empty() {
        writeln!(out, "parameters: none")?;
    } else {
        writeln!(out, "parameters:")?;
        let w = md
            .parameters
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            out,
            "  {:w$}  {:8}  {:20}  {:24}  DESCRIPTION",
            "NAME", "TYPE", "DEFAULT", "FLAGS"
        )?;
        for p in &md.parameters {
            let kind = match &p.content {
                ra::metadata::ContentType::String => "string".to_string(),
                ra::metadata::ContentType::Integer => "integer".to_string(),
                ra::metadata::ContentType::Boolean => "boolean".to_string(),
                ra::metadata::ContentType::Select => "select".to_string(),
                ra::metadata::ContentType::Other(o) => o.clone(),
            };
            let mut flags = Vec::new();
            if p.required {
                flags.push("required".to_string());
            }
            if p.unique {
                flags.push("unique".to_string());
            }
            if let Some(g) = &p.unique_group {
                flags.push(format!("unique-group={g}"));
            }
            if p.reloadable {
                flags.push("reloadable".to_string());
            }
            if p.deprecated {
                flags.push("deprecated".to_string());
            }
            let mut desc = p.shortdesc.clone();
            if !p.options.is_empty() {
                desc.push_str(&format!(" [{}]", p.options.join("|")));
            }
            writeln!(
                out,
                "  {:w$}  {:8}  {:20}  {:24}  {}",
                p.name,
                kind,
                p.default.as_deref().unwrap_or("-"),
                if flags.is_empty() {
                    "-".to_string()
                } else {
                    flags.join(",")
                },
                desc
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "actions:")?;
    writeln!(
        out,
        "  {:14}  {:8}  {:8}  {:5}  ROLE",
        "NAME", "TIMEOUT", "INTERVAL", "DEPTH"
    )?;
    for a in &md.actions {
        writeln!(
            out,
            "  {:14}  {:8}  {:8}  {:5}  {}",
            a.name,
            dur(a.timeout),
            dur(a.interval),
            a.depth.map_or_else(|| "-".to_string(), |d| d.to_string()),
            a.role.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// `hapair agent meta AGENT`.
pub async fn meta(agent: &str, common: &CommonArgs, json: bool, out: &mut dyn Write) -> Result<()> {
    let agent: Agent = agent.parse()?;
    let runner = Runner::new(runner_config(common))?;
    let md = runner.meta_data(&agent).await?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &md)?;
        writeln!(out)?;
    } else {
        print_meta(&agent, &md, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        cmd: AgentCmd,
    }

    fn parse(args: &[&str]) -> AgentCmd {
        T::try_parse_from(std::iter::once("agent").chain(args.iter().copied()))
            .unwrap()
            .cmd
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(&[&["run"], args].concat()) {
            AgentCmd::Run(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plan_builds_the_request() {
        let a = run_args(&[
            "ocf:heartbeat:IPaddr2",
            "monitor",
            "-p",
            "ip=10.0.0.5",
            "--param",
            "cidr_netmask=24",
            "--meta",
            "target-role=Started",
            "--interval",
            "10s",
            "--check-level",
            "10",
            "--role",
            "promoted",
            "--netns",
            "lab",
            "--node",
            "alpha",
            "--timeout",
            "30s",
        ]);
        let p = plan(&a).unwrap();
        let r = &p.request;
        assert_eq!(r.agent.to_string(), "ocf:heartbeat:IPaddr2");
        assert_eq!(r.resource, "IPaddr2");
        assert_eq!(r.action, Action::Monitor);
        assert_eq!(r.params["ip"], "10.0.0.5");
        assert_eq!(r.params["cidr_netmask"], "24");
        assert_eq!(r.meta["target-role"], "Started");
        assert_eq!(r.interval, Duration::from_secs(10));
        assert_eq!(r.check_level, Some(10));
        assert_eq!(r.expect, Role::Promoted);
        assert_eq!(r.netns.as_deref(), Some("lab"));
        assert_eq!(r.timeout, Duration::from_secs(30));
        assert_eq!(p.timeout, Some(Duration::from_secs(30)));
        assert_eq!(p.config.node_name, "alpha");
        assert_eq!(p.config.kill_grace, Duration::from_secs(5));
    }

    #[test]
    fn plan_refuses_bad_input() {
        for args in [
            &["ocf:heartbeat", "start"][..],
            &["ocf:heartbeat:Dummy", "Start"],
            &["ocf:heartbeat:Dummy", "start", "-p", "novalue"],
            &["ocf:heartbeat:Dummy", "start", "-p", "=v"],
            &["ocf:heartbeat:Dummy", "start", "-p", "a=1", "-p", "a=2"],
            &["ocf:heartbeat:Dummy", "start", "--interval", "10s"],
            &["ocf:heartbeat:Dummy", "start", "--timeout", "0s"],
        ] {
            assert!(plan(&run_args(args)).is_err(), "{args:?}");
        }
        assert!(
            T::try_parse_from([
                "agent",
                "run",
                "ocf:heartbeat:Dummy",
                "start",
                "--timeout",
                "soon"
            ])
            .is_err()
        );
    }

    #[tokio::test]
    async fn run_dummy_probe_prints_and_returns_the_code() {
        assert!(
            std::path::Path::new("/usr/lib/ocf/resource.d/heartbeat/Dummy").exists(),
            "install the Debian package resource-agents (the test script .ci/test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let state = format!("state={}/d.state", dir.path().display());
        let a = run_args(&["ocf:heartbeat:Dummy", "monitor", "-p", &state, "-r", "d1"]);
        let mut out = Vec::new();
        let code = run(&a, &mut out).await.unwrap();
        assert_eq!(code, 7);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("ocf:heartbeat:Dummy monitor (probe), resource d1, timeout 20s\n"),
            "{text}"
        );
        assert!(
            text.contains("result:  rc 7 (OCF_NOT_RUNNING) (exited with 7)"),
            "{text}"
        );
        assert!(
            text.contains("verdict: success; resource stopped"),
            "{text}"
        );
        assert!(text.contains("timing:  "), "{text}");

        let a = run_args(&["ocf:heartbeat:Dummy", "start", "-p", &state, "--json"]);
        let mut out = Vec::new();
        assert_eq!(run(&a, &mut out).await.unwrap(), 0);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["rc"]["code"], 0);
        assert_eq!(v["classification"]["verdict"]["verdict"], "success");

        // The timeout comes from the agent's hint: Filesystem's monitor, 40 s.
        let a = run_args(&[
            "ocf:heartbeat:Filesystem",
            "monitor",
            "-p",
            "device=/dev/null",
            "-p",
            "directory=/nonexistent/hapair",
            "-p",
            "fstype=ext4",
            "--json",
        ]);
        let mut out = Vec::new();
        assert_eq!(run(&a, &mut out).await.unwrap(), 7);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["timing"]["timeout_us"], 40_000_000);

        let a = run_args(&[
            "ocf:heartbeat:Dummy",
            "monitor",
            "-p",
            &state,
            "--interval",
            "10s",
        ]);
        let mut out = Vec::new();
        assert_eq!(run(&a, &mut out).await.unwrap(), 0);
        let a = run_args(&["ocf:heartbeat:Dummy", "stop", "-p", &state]);
        assert_eq!(run(&a, &mut Vec::new()).await.unwrap(), 0);

        // A required parameter missing: refused before the agent runs.
        let a = run_args(&[
            "ocf:heartbeat:Filesystem",
            "start",
            "-p",
            "device=/dev/null",
        ]);
        let e = run(&a, &mut Vec::new()).await.unwrap_err();
        assert!(e.to_string().contains("--skip-validation"), "{e}");
        // A missing agent runs and says rc 5.
        let a = run_args(&["ocf:heartbeat:NoSuchAgent", "start"]);
        assert_eq!(run(&a, &mut Vec::new()).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn meta_and_list_print() {
        let common = CommonArgs {
            ocf_root: "/usr/lib/ocf".into(),
            lsb_dir: "/etc/init.d".into(),
        };
        let mut out = Vec::new();
        meta("ocf:heartbeat:Filesystem", &common, false, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "ocf:heartbeat:Filesystem (agent version 1.1, OCF 1.0): Manages filesystem mounts"
            ),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("device ") && l.contains("required")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("start ") && l.contains("1m")),
            "{text}"
        );
        let mut out = Vec::new();
        meta("ocf:heartbeat:Dummy", &common, true, &mut out)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["name"], "Dummy");
        assert_eq!(v["actions"][0]["timeout"], 20_000);

        let mut out = Vec::new();
        list(&common, false, &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().any(|l| l == "ocf:heartbeat:Dummy"), "{text}");
        assert!(text.lines().any(|l| l == "ocf:heartbeat:IPaddr2"));
        let mut out = Vec::new();
        list(&common, true, &mut out).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(
            v["ocf"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "ocf:heartbeat:Filesystem")
        );
    }
}
