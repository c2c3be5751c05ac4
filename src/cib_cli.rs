//! `hapair import-cib FILE`: the glue around [`hapair::cib`]: read the
//! file (or stdin), print the hapair.toml (or JSON), exit non-zero on a
//! refusal.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Arguments of `hapair import-cib`.
#[derive(Debug, Args)]
pub struct ImportCibArgs {
    /// The CIB: a `<configuration>` (cibadmin -Q -o configuration) or a
    /// whole `<cib>` (cibadmin -Q); `-` reads stdin.
    pub file: PathBuf,
    /// A node's heartbeat address on each link (a CIB has none):
    /// NAME=ADDR[:PORT][,ADDR...], once per node; port 5405 by default.
    #[arg(long = "node", value_name = "NAME=ADDR[,ADDR...]")]
    pub nodes: Vec<hapair::cib::NodeAddrs>,
    /// Print JSON: the TOML text, placeholders, warnings and mappings.
    #[arg(long)]
    pub json: bool,
}

/// Entry point from `main`.
pub fn main(args: ImportCibArgs) -> ExitCode {
    let name = args.file.display().to_string();
    let text = if name == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(&args.file)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"file": name, "imported": false, "error": e.to_string()})
                );
            } else {
                eprintln!("hapair import-cib: {name}: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let opts = hapair::cib::Options { nodes: args.nodes };
    match hapair::cib::import_with(&text, &opts) {
        Ok(i) => {
            if args.json {
                let mut v = serde_json::to_value(&i).unwrap_or_default();
                v["file"] = name.into();
                v["imported"] = true.into();
                println!("{v}");
            } else {
                print!("{}", i.toml);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"file": name, "imported": false, "error": e.to_string(), "line": e.line(), "at": e.at()})
                );
            } else {
                eprintln!("hapair import-cib: {name}: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
