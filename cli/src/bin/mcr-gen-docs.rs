//! `mcr-gen-docs DIR`: writes the man pages (`DIR/man/`) and the shell
//! completions (`DIR/completions/{bash,zsh,fish}/`) of mcrd, mcrctl and
//! mcrgen, generated from their clap definitions and docs/configuration.md.
//! packaging/build.sh runs it; it is not part of the packages.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: mcr-gen-docs DIR");
        return ExitCode::from(2);
    };
    match mcr_cli::docs::write_all(std::path::Path::new(dir)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcr-gen-docs: {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}
