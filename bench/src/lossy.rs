//! The lossy-link scenario: a network namespace joined to this one by a veth pair whose two
//! ends delay every packet by 10 ms and drop 1% of them (`tc netem`), so a round trip takes
//! 20 ms plus losses. Needs root and the `ip` and `tc` tools; otherwise it says why it was
//! skipped.

use std::process::Command;

/// The address of this side of the link.
pub const LOCAL: &str = "10.203.0.1";
/// The address servers bind in the namespace.
pub const REMOTE: &str = "10.203.0.2";

/// A network namespace with a netem link to this one; removed when dropped.
#[derive(Debug)]
pub struct LossyLink {
    namespace: String,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

impl LossyLink {
    /// Creates the namespace and the link, or says why it cannot.
    pub fn create() -> Result<LossyLink, String> {
        if effective_uid() != Some(0) {
            return Err("needs root to create a network namespace with tc netem (run as root to include it)".into());
        }
        let id = std::process::id() % 100_000;
        let link = LossyLink { namespace: format!("mcpt-bench-{id}") };
        let (host_if, ns_if) = (format!("mcb{id}a"), format!("mcb{id}b"));
        let ns = link.namespace.as_str();
        let steps: Vec<Vec<&str>> = vec![
            vec!["ip", "netns", "add", ns],
            vec!["ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", ns],
            vec!["ip", "addr", "add", "10.203.0.1/30", "dev", &host_if],
            vec!["ip", "link", "set", &host_if, "up"],
            vec!["ip", "-n", ns, "addr", "add", "10.203.0.2/30", "dev", &ns_if],
            vec!["ip", "-n", ns, "link", "set", &ns_if, "up"],
            vec!["ip", "-n", ns, "link", "set", "lo", "up"],
            vec!["tc", "qdisc", "add", "dev", &host_if, "root", "netem", "delay", "10ms", "loss", "1%"],
            vec![
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", &ns_if, "root", "netem", "delay", "10ms",
                "loss", "1%",
            ],
        ];
        for step in steps {
            // On failure `link` is dropped, which removes whatever was created.
            run(&step).map_err(|e| {
                if e.contains("qdisc kind is unknown") {
                    format!("this kernel has no netem queueing discipline (sch_netem): {e}")
                } else {
                    e
                }
            })?;
        }
        Ok(link)
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn prefix(&self) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.namespace.clone()]
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        if let Err(e) = run(&["ip", "netns", "del", &self.namespace]) {
            tracing::warn!(error = %e, "could not remove the lossy-link namespace");
        }
    }
}
