//! `fence_lab`: the lab's fence agent (see `hwtest::fence_lab`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(hwtest::fence_lab::main_args(&args));
}
