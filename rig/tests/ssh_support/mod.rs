//! What the ssh tests on the host share: the tools they need and small file helpers.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

pub const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

pub fn require_tools() {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "the ssh tests run dropbear as root in a private mount namespace: run as root"
    );
    for tool in ["dropbear", "dropbearkey", "unshare"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "`{tool}` is missing: apt-get install -y dropbear-bin util-linux"
        );
    }
}

pub fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}
