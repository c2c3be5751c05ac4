//! `fence_lab`: the fence agent of the lab's virtual power switch
//! (`lab-power.sh --watch` on the host), speaking the fence-agents stdin
//! protocol so that hapair (and Pacemaker's fencer) fence lab guests
//! exactly as they fence real nodes.
//!
//! It runs inside a guest (or on the host) as the `fence_lab` binary of
//! this crate, or as the `hapair` binary called by the name `fence_lab`
//! (the lab demo links it so). It is a program rather than a script
//! because process creation in a UML guest costs 40-110 ms: the script it
//! replaces forked `mv`, `mkfifo` and `rm` for every request, which put
//! about half a second into every fencing.
//!
//! Options, as `name=value` lines on stdin (`#` starts a comment; `-` and
//! `_` alike in names) or on the command line for manual use:
//! `action=off|on|reboot|status|monitor|list|list-status|metadata|validate-all`
//! (also `option=`, `-o`/`--action`; default `reboot`),
//! `plug=nodeA|nodeB|nodeC` (aliases `port=`, `nodename=`; `-n`/`--plug`/
//! `--port`/`--nodename`), `labdir=DIR` (`--labdir`), `power_timeout=SECONDS`
//! (`--power-timeout`, default 60). Unknown names on stdin are ignored, as
//! fence-agents do; unknown arguments are an error.
//!
//! Exit codes: 0 success (`status`: on), 2 `status`: off, 1 error (bad plug
//! or action, no answer from the switch, failed power operation).
//!
//! A request to the switch: `<action> <node>` written to
//! `$labdir/power/<id>.tmp` and renamed to `<id>.req`; the host answers with
//! `<id>.done` holding the rc (0 done/on, 2 off, 1 error). The lab dir:
//! `labdir=`, else `lab_dir=` of the guest kernel command line, else
//! `$LAB_DIR`, else `/tmp/$LAB_NETNS` (`LAB_NETNS` default `hapair-lab`).

use std::fs;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lab's plugs.
pub const NODES: [&str; 3] = ["nodeA", "nodeB", "nodeC"];

/// How often the answer file is looked for.
const POLL: Duration = Duration::from_millis(10);

/// The agent's options after parsing stdin and argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The action (default `reboot`).
    pub action: String,
    /// `plug=` / `port=`.
    pub plug: String,
    /// `nodename=`, the plug when none is given.
    pub nodename: String,
    /// `labdir=`, empty for the default.
    pub labdir: String,
    /// `power_timeout=`, as given (whole seconds).
    pub timeout: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            action: "reboot".into(),
            plug: String::new(),
            nodename: String::new(),
            labdir: String::new(),
            timeout: "60".into(),
        }
    }
}

impl Options {
    /// Applies `name=value` lines (stdin); unknown names are ignored.
    pub fn apply_stdin(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().to_string();
            match name.trim().replace('-', "_").as_str() {
                "action" | "option" => self.action = value,
                "port" | "plug" => self.plug = value,
                "nodename" => self.nodename = value,
                "labdir" => self.labdir = value,
                "power_timeout" => self.timeout = value,
                _ => {}
            }
        }
    }

    /// Applies command-line arguments; an unknown one is an error.
    pub fn apply_args(&mut self, args: &[String]) -> Result<(), String> {
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (a, None),
            };
            let slot = match name {
                "-o" | "--action" => &mut self.action,
                "-n" | "--plug" | "--port" => &mut self.plug,
                "--nodename" => &mut self.nodename,
                "--labdir" => &mut self.labdir,
                "--power-timeout" => &mut self.timeout,
                _ => return Err(format!("unknown argument '{a}'")),
            };
            *slot = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i).cloned().unwrap_or_default()
                }
            };
            i += 1;
        }
        Ok(())
    }

    /// The plug, `nodename` when no plug was given.
    pub fn target(&self) -> &str {
        if self.plug.is_empty() {
            &self.nodename
        } else {
            &self.plug
        }
    }
}

/// The lab dir from the guest kernel command line's `lab_dir=`, else the
/// environment.
fn default_labdir() -> PathBuf {
    if let Ok(cmdline) = fs::read_to_string("/proc/cmdline") {
        if let Some(d) = cmdline
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("lab_dir="))
        {
            return PathBuf::from(d);
        }
    }
    if let Some(d) = std::env::var_os("LAB_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let ns = std::env::var("LAB_NETNS").unwrap_or_else(|_| "hapair-lab".into());
    PathBuf::from("/tmp").join(ns)
}

/// Asks the power switch in `labdir` for `action` on `node`: its rc (0
/// done/on, 2 off, 1 error), or an error when it does not answer within
/// `timeout` (the request is then withdrawn if it was not taken yet).
pub fn power(labdir: &Path, action: &str, node: &str, timeout: Duration) -> Result<i32, String> {
    let d = labdir.join("power");
    if !d.is_dir() {
        return Err(format!("no power switch dir {}", d.display()));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let id = format!("fl{}-{nanos}", std::process::id());
    let tmp = d.join(format!("{id}.tmp"));
    let req = d.join(format!("{id}.req"));
    let done = d.join(format!("{id}.done"));
    let taken = d.join(format!("{id}.req.taken"));
    fs::write(&tmp, format!("{action} {node}\n"))
        .and_then(|()| fs::rename(&tmp, &req))
        .map_err(|e| format!("cannot ask the power switch ({}): {e}", d.display()))?;
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if let Ok(text) = fs::read_to_string(&done) {
            if !text.is_empty() {
                let _ = fs::remove_file(&done);
                let _ = fs::remove_file(&taken);
                return match text.trim() {
                    "0" => Ok(0),
                    "1" => Ok(1),
                    "2" => Ok(2),
                    other => Err(format!("bad answer '{other}' from the power switch")),
                };
            }
        }
        std::thread::sleep(POLL);
    }
    // not taken yet: withdraw it, so the switch does not act after we
    // reported failure
    let _ = fs::remove_file(&req);
    Err(format!(
        "no answer from the lab power switch ({}) in {} s",
        d.display(),
        timeout.as_secs()
    ))
}

/// The agent's metadata (fence-agents XML).
pub const METADATA: &str = r#"<?xml version="1.0" ?>
<resource-agent name="fence_lab" shortdesc="Fence agent for the UML lab's virtual power switch">
<longdesc>Powers a UML lab guest off/on through the lab's power switch (lab-power.sh --watch on the host): off = SIGKILL of the guest's UML process group, on = boot it again (DRBD down).</longdesc>
<vendor-url>none</vendor-url>
<parameters>
	<parameter name="action" unique="0" required="1">
		<getopt mixed="-o, --action=[action]"/>
		<content type="string" default="reboot"/>
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="plug" unique="0" required="1" obsoletes="port">
		<getopt mixed="-n, --plug=[id]"/>
		<content type="string"/>
		<shortdesc lang="en">Lab node to act on (nodeA, nodeB, nodeC)</shortdesc>
	</parameter>
	<parameter name="port" unique="0" required="0" deprecated="1">
		<getopt mixed="-n, --plug=[id]"/>
		<content type="string"/>
		<shortdesc lang="en">Lab node to act on (deprecated, use plug)</shortdesc>
	</parameter>
	<parameter name="nodename" unique="0" required="0">
		<getopt mixed="--nodename=[name]"/>
		<content type="string"/>
		<shortdesc lang="en">Lab node to act on when plug is not given</shortdesc>
	</parameter>
	<parameter name="labdir" unique="0" required="0">
		<getopt mixed="--labdir=[dir]"/>
		<content type="string"/>
		<shortdesc lang="en">Lab dir shared with the host (default: lab_dir= of the guest kernel cmdline, else $LAB_DIR, else /tmp/hapair-lab)</shortdesc>
	</parameter>
	<parameter name="power_timeout" unique="0" required="0">
		<getopt mixed="--power-timeout=[seconds]"/>
		<content type="second" default="60"/>
		<shortdesc lang="en">Seconds to wait for the power switch to answer</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off"/>
	<action name="reboot"/>
	<action name="status"/>
	<action name="list"/>
	<action name="list-status"/>
	<action name="monitor"/>
	<action name="metadata"/>
	<action name="validate-all"/>
</actions>
</resource-agent>
"#;

/// Runs the agent: options from stdin (when it is not a terminal) and
/// `args` (without the program name); prints to stdout and stderr and
/// returns the exit code.
pub fn main_args(args: &[String]) -> i32 {
    let mut o = Options::default();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut text = String::new();
        if let Err(e) = stdin.lock().read_to_string(&mut text) {
            eprintln!("fence_lab: cannot read the options on stdin: {e}");
            return 1;
        }
        o.apply_stdin(&text);
    }
    if let Err(e) = o.apply_args(args) {
        eprintln!("fence_lab: {e}");
        return 1;
    }
    run(&o)
}

fn run(o: &Options) -> i32 {
    let Ok(secs) = o.timeout.parse::<u64>() else {
        eprintln!(
            "fence_lab: power_timeout must be whole seconds, not '{}'",
            o.timeout
        );
        return 1;
    };
    let timeout = Duration::from_secs(secs);
    let labdir = if o.labdir.is_empty() {
        default_labdir()
    } else {
        PathBuf::from(&o.labdir)
    };
    let plug = o.target();
    let check_plug = || -> Result<(), i32> {
        if NODES.contains(&plug) {
            Ok(())
        } else {
            eprintln!(
                "fence_lab: plug must be one of: {}; got '{plug}'",
                NODES.join(" ")
            );
            Err(1)
        }
    };
    let ask = |action: &str, node: &str| -> i32 {
        match power(&labdir, action, node, timeout) {
            Ok(rc) => rc,
            Err(e) => {
                eprintln!("fence_lab: {e}");
                1
            }
        }
    };
    match o.action.as_str() {
        "metadata" => {
            print!("{METADATA}");
            0
        }
        "list" => {
            for n in NODES {
                println!("{n},");
            }
            0
        }
        "list-status" => {
            for n in NODES {
                match ask("status", n) {
                    0 => println!("{n},,on"),
                    2 => println!("{n},,off"),
                    _ => return 1,
                }
            }
            0
        }
        // the switch answers at all
        "monitor" => i32::from(ask("status", NODES[0]) == 1),
        "validate-all" => {
            let d = labdir.join("power");
            if !d.is_dir() {
                eprintln!("fence_lab: no power switch dir {}", d.display());
                return 1;
            }
            if plug.is_empty() {
                0
            } else {
                check_plug().err().unwrap_or(0)
            }
        }
        "status" => {
            if let Err(rc) = check_plug() {
                return rc;
            }
            let rc = ask("status", plug);
            match rc {
                0 => println!("Status: ON"),
                2 => println!("Status: OFF"),
                _ => {}
            }
            rc
        }
        action @ ("off" | "on" | "reboot") => {
            if let Err(rc) = check_plug() {
                return rc;
            }
            if ask(action, plug) != 0 {
                return 1;
            }
            // like fence-agents: confirm the result with a status request
            let rc = ask("status", plug);
            if matches!((action, rc), ("off", 2) | ("on" | "reboot", 0)) {
                0
            } else {
                eprintln!("fence_lab: {action} {plug} done, but status says rc={rc}");
                1
            }
        }
        other => {
            eprintln!("fence_lab: unsupported action '{other}'");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_options_with_comments_aliases_and_unknown_names() {
        let mut o = Options::default();
        o.apply_stdin(
            "# fenced asks\naction=off\nport=nodeB # the peer\nipaddr=x\npower-timeout=5\n\n",
        );
        assert_eq!(o.action, "off");
        assert_eq!(o.target(), "nodeB");
        assert_eq!(o.timeout, "5");
        let mut o = Options::default();
        o.apply_stdin("option=status\nnodename=nodeA\n");
        assert_eq!((o.action.as_str(), o.target()), ("status", "nodeA"));
    }

    #[test]
    fn argv_options_both_spellings_and_unknown_is_an_error() {
        let mut o = Options::default();
        let a: Vec<String> = ["-o", "status", "--plug=nodeC", "--labdir", "/x"]
            .map(String::from)
            .to_vec();
        o.apply_args(&a).unwrap();
        assert_eq!(
            (o.action.as_str(), o.target(), o.labdir.as_str()),
            ("status", "nodeC", "/x")
        );
        let e = o.apply_args(&["--dance".to_string()]).unwrap_err();
        assert!(e.contains("'--dance'"), "{e}");
    }

    /// The request/answer protocol against a stand-in switch thread that
    /// answers like `lab-power.sh --watch` (rename to .taken, write .done).
    #[test]
    fn power_request_round_trip_and_withdrawal() {
        let dir = tempfile::tempdir().unwrap();
        let pd = dir.path().join("power");
        fs::create_dir(&pd).unwrap();
        let sw = pd.clone();
        let h = std::thread::spawn(move || {
            for _ in 0..500 {
                for e in fs::read_dir(&sw).unwrap().flatten() {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "req") {
                        let text = fs::read_to_string(&p).unwrap();
                        let taken = PathBuf::from(format!("{}.taken", p.display()));
                        fs::rename(&p, &taken).unwrap();
                        let rc = if text == "status nodeB\n" { "2" } else { "1" };
                        let base = p.with_extension("");
                        let tmp = base.with_extension("tmp");
                        fs::write(&tmp, format!("{rc}\n")).unwrap();
                        fs::rename(&tmp, base.with_extension("done")).unwrap();
                        return text;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            String::new()
        });
        let rc = power(dir.path(), "status", "nodeB", Duration::from_secs(5)).unwrap();
        assert_eq!(rc, 2);
        assert_eq!(h.join().unwrap(), "status nodeB\n");
        // answered files are cleaned up
        assert_eq!(fs::read_dir(&pd).unwrap().count(), 0);
        // no switch: the request is withdrawn after the timeout
        let e = power(dir.path(), "off", "nodeA", Duration::from_secs(0)).unwrap_err();
        assert!(e.contains("no answer"), "{e}");
        assert_eq!(fs::read_dir(&pd).unwrap().count(), 0);
        let e = power(
            &dir.path().join("nope"),
            "off",
            "nodeA",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.contains("no power switch dir"), "{e}");
    }
}
