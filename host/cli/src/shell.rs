//! `rmhost completions SHELL` and `rmhost man`: generated from the clap definition, so they
//! never drift from the real flags.

use super::Cli;
use clap::CommandFactory;
use std::io::Write;
use std::path::Path;

/// Prints the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "rmhost", &mut out);
    out.flush()?;
    Ok(0)
}

/// Prints rmhost(1) to stdout, or with `dir` writes rmhost.1 and one page per verb
/// (rmhost-run.1, ...) there.
pub fn man(dir: Option<&Path>) -> anyhow::Result<i32> {
    let cmd = Cli::command();
    match dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("--out-dir {}: {e}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| anyhow::anyhow!("--out-dir {}: {e}", dir.display()))?;
        }
    }
    Ok(0)
}
