//! `mcpt conform` against a third-party server: `@modelcontextprotocol/server-everything`
//! (pinned in `conformance/official/package.json`), with its known bugs in
//! `conformance/baselines/server-everything.toml`.

mod common;

use std::process::Command;

use common::{MCPT, node, server_everything};

fn baseline() -> String {
    format!("{}/../conformance/baselines/server-everything.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn server_everything_over_stdio_passes_or_is_baselined() {
    let out = Command::new(MCPT)
        .args(["conform", "--baseline", &baseline(), "--timeout", "10", "--latency-samples", "50"])
        .args(["--call-tool", r#"echo={"message":"conformance"}"#])
        .arg("--")
        .arg(node())
        .arg(server_everything())
        .arg("stdio")
        .output()
        .expect("run mcpt conform");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{report}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("0 failed, 0 warnings"), "{report}");
}
