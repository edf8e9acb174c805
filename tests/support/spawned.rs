//! A background process that cannot outlive its test.

use super::Ran;
use std::process::Child;
use std::time::{Duration, Instant};

/// A process started in the background (`rb`, usually: [`Test::spawn`]), killed and reaped
/// when dropped, so a failing test leaves nothing running.
pub struct Spawned(pub Option<Child>);

impl From<Child> for Spawned {
    fn from(child: Child) -> Self {
        Spawned(Some(child))
    }
}

impl Spawned {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }

    pub fn pid(&self) -> i32 {
        let id = self.0.as_ref().expect("child").id();
        i32::try_from(id).expect("a pid")
    }

    /// Send `signal` to the process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("kill");
    }

    /// Its exit code if it has ended (`-1`: killed by a signal).
    pub fn exited(&mut self) -> Option<i32> {
        let status = self.child().try_wait().expect("try_wait")?;
        Some(status.code().unwrap_or(-1))
    }

    /// Wait for the end, failing the test (and killing the process) after `within`; what it
    /// printed is read meanwhile, so a full pipe cannot stall it.
    #[track_caller]
    pub fn wait(&mut self, within: Duration) -> Ran {
        let mut child = self.0.take().expect("child");
        let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the process did not end within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ran {
            code: status.code().unwrap_or(-1),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
