//! `palisade-node`, the validator binary. Not built yet: see issue 4.

fn main() -> std::process::ExitCode {
    eprintln!("palisade-node: the validator node is not implemented yet (issue 4)");
    std::process::ExitCode::from(2)
}
