//! `hapair-recordd`: the lab demo's record service, client and OCF agent
//! (see `hwtest::record`), and `pgclient`, the PostgreSQL commit recorder
//! of lab scenario 5 (see `hwtest::pgclient`), and `nfswriter`, the NFS
//! record writer of lab scenario 6 (see `hwtest::nfs`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rc = match args.first().map(String::as_str) {
        Some("pgclient") => hwtest::pgclient::main_args(&args[1..]),
        Some("nfswriter") => hwtest::nfs::main_args(&args[1..]),
        _ => hwtest::record::main_args(&args),
    };
    std::process::exit(rc);
}
