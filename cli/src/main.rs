//! `palisade`, the wallet. Not built yet: see issue 5.

fn main() -> std::process::ExitCode {
    eprintln!("palisade: the wallet is not implemented yet (issue 5)");
    std::process::ExitCode::from(2)
}
