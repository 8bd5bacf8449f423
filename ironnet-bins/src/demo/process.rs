//! The demo's role processes: started from their binaries with output in a
//! log file, stopped (SIGKILL, like a crash) and started again with the
//! same arguments, killed when dropped.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::DemoError;

/// One role process (controller, bond server, agent).
#[derive(Debug)]
pub struct RoleProcess {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl RoleProcess {
    /// Starts `program args…`; stdout and stderr go to `<log_dir>/<name>.log`.
    pub fn start(
        name: &str,
        program: &Path,
        args: Vec<String>,
        log_dir: &Path,
    ) -> Result<Self, DemoError> {
        let mut p = RoleProcess {
            name: name.to_owned(),
            program: program.to_owned(),
            args,
            log: log_dir.join(format!("{name}.log")),
            child: None,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<(), DemoError> {
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .map_err(|e| DemoError::Io(format!("{}: {e}", self.log.display())))
        };
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?)
            .spawn()
            .map_err(|e| DemoError::Spawn(format!("{}: {e}", self.program.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// The process's name in the demo.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Kills it (SIGKILL: no chance to clean up, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again with the same arguments (stopping it first).
    pub fn restart(&mut self) -> Result<(), DemoError> {
        self.stop();
        self.spawn()
    }

    /// Whether it is still running; an exit is reported with its status.
    pub fn check(&mut self) -> Result<(), DemoError> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(status))) => Err(DemoError::Exited(format!(
                "{} exited ({status}); see {}",
                self.name,
                self.log.display()
            ))),
            Some(Err(e)) => Err(DemoError::Io(e.to_string())),
            None => Err(DemoError::Exited(format!("{} is stopped", self.name))),
        }
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
