//! `hapair-recordd`: the lab demo's record service, client and OCF agent
//! (see `hwtest::record`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(hwtest::record::main_args(&args));
}
