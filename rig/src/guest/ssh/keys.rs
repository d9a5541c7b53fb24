//! Per-run key material: the client key pair rig authenticates with, and the guest's host key
//! that rig pins from the console before trusting the ssh handshake.

use super::SshError;
use ssh_key::{rand_core::OsRng, Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// The marker the guest hook (`images/init/etc/rig/init.d/50-ssh.sh`) prints once dropbear listens:
/// `RIG-SSH-HOSTKEY <algorithm> <base64 blob>`.
pub const HOSTKEY_MARKER: &str = "RIG-SSH-HOSTKEY";
/// The marker the guest hook prints when it cannot start dropbear: `RIG-SSH-ERROR <reason>`.
pub const ERROR_MARKER: &str = "RIG-SSH-ERROR";
/// The kernel command line parameter carrying the client's public key to the guest hook.
pub const CMDLINE_PARAM: &str = "rig.ssh_key";

/// A fresh ed25519 client key pair, generated per run and never written to the repository.
#[derive(Clone)]
pub struct ClientKey {
    private_openssh: Zeroizing<String>,
    public: PublicKey,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("public", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// Generates an ed25519 key pair from the OS random source.
    pub fn generate() -> Result<Self, SshError> {
        let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
            .map_err(|source| SshError::KeyGen { source })?;
        key.set_comment("rig");
        let private_openssh = key
            .to_openssh(LineEnding::LF)
            .map_err(|source| SshError::KeyGen { source })?;
        Ok(ClientKey {
            private_openssh,
            public: key.public_key().clone(),
        })
    }

    /// The private key in OpenSSH format (`-----BEGIN OPENSSH PRIVATE KEY-----`), unencrypted.
    pub fn private_openssh(&self) -> &str {
        &self.private_openssh
    }

    /// `ssh-ed25519 AAAA… rig`, one line with a trailing newline: the guest's
    /// `/root/.ssh/authorized_keys` (mode 0600 under a 0700 `/root/.ssh`).
    pub fn authorized_keys(&self) -> String {
        format!("{} {} rig\n", self.algorithm(), self.base64())
    }

    /// `rig.ssh_key=ssh-ed25519:AAAA…` (about 90 bytes): on the kernel command line it asks the
    /// guest hook to install this key as root's authorized key and to start dropbear.
    pub fn kernel_cmdline_param(&self) -> String {
        format!("{CMDLINE_PARAM}={}:{}", self.algorithm(), self.base64())
    }

    /// `SHA256:…`, for logs.
    pub fn fingerprint(&self) -> String {
        self.public.fingerprint(HashAlg::Sha256).to_string()
    }

    fn algorithm(&self) -> String {
        self.public.algorithm().to_string()
    }

    fn base64(&self) -> String {
        // `to_openssh` is `<algorithm> <base64>[ <comment>]`.
        self.public
            .to_openssh()
            .ok()
            .and_then(|s| s.split_whitespace().nth(1).map(str::to_owned))
            .unwrap_or_default()
    }
}

/// A guest host key as printed on the console, pinned before the handshake is trusted.
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey {
    algorithm: String,
    blob: Vec<u8>,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostKey({} {})", self.algorithm, self.fingerprint())
    }
}

impl std::fmt::Display for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.algorithm, self.fingerprint())
    }
}

impl HostKey {
    /// Parses `<algorithm> <base64>` (an OpenSSH public key line; a comment is ignored).
    pub fn from_openssh(line: &str) -> Result<Self, SshError> {
        let key = PublicKey::from_openssh(line.trim()).map_err(|source| SshError::BadHostKey {
            line: line.trim().to_owned(),
            source,
        })?;
        let blob = key.to_bytes().map_err(|source| SshError::BadHostKey {
            line: line.trim().to_owned(),
            source,
        })?;
        Ok(HostKey {
            algorithm: key.algorithm().to_string(),
            blob,
        })
    }

    /// A host key from the raw SSH wire blob (what `ssh2::Session::host_key` returns).
    pub fn from_blob(blob: &[u8]) -> Result<Self, SshError> {
        let key = PublicKey::from_bytes(blob).map_err(|source| SshError::BadHostKey {
            line: format!("<{}-byte key blob from the server>", blob.len()),
            source,
        })?;
        Ok(HostKey {
            algorithm: key.algorithm().to_string(),
            blob: blob.to_vec(),
        })
    }

    /// [`HostKey::from_console`] of a console log as it is on disk: any bytes (the guest's
    /// console is untrusted; one that is not UTF-8 must not hide the key).
    pub fn from_console_bytes(console: &[u8]) -> Result<Self, SshError> {
        Self::from_console(&String::from_utf8_lossy(console))
    }

    /// The last valid `RIG-SSH-HOSTKEY` marker in a console log. The marker may sit after other
    /// text on its line (a printk can interleave), and `\r` from the serial line is ignored.
    pub fn from_console(console: &str) -> Result<Self, SshError> {
        let mut last_bad = None;
        for line in console.lines().rev() {
            let Some(at) = line.find(HOSTKEY_MARKER) else {
                continue;
            };
            let rest = line[at + HOSTKEY_MARKER.len()..].trim_matches(|c: char| c.is_whitespace());
            let mut fields = rest.split_whitespace();
            let (Some(alg), Some(b64)) = (fields.next(), fields.next()) else {
                continue;
            };
            match HostKey::from_openssh(&format!("{alg} {b64}")) {
                Ok(k) => return Ok(k),
                Err(e) => {
                    if last_bad.is_none() {
                        last_bad = Some(e);
                    }
                }
            }
        }
        if let Some(e) = last_bad {
            return Err(e);
        }
        let guest_errors: Vec<String> = console
            .lines()
            .filter_map(|l| l.find(ERROR_MARKER).map(|at| l[at..].trim().to_owned()))
            .collect();
        Err(SshError::NoHostKeyMarker {
            guest_errors: if guest_errors.is_empty() {
                "none".into()
            } else {
                guest_errors.join("; ")
            },
        })
    }

    /// `ssh-ed25519`, `ssh-rsa`, …
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The SSH wire encoding of the key.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// `SHA256:…` like `ssh-keygen -l`.
    pub fn fingerprint(&self) -> String {
        match PublicKey::from_bytes(&self.blob) {
            Ok(k) => k.fingerprint(HashAlg::Sha256).to_string(),
            Err(_) => "<unparsable key>".into(),
        }
    }

    /// The marker line the guest hook prints for this key.
    pub fn marker_line(&self) -> String {
        match PublicKey::from_bytes(&self.blob).and_then(|k| k.to_openssh()) {
            Ok(s) => {
                let b64 = s.split_whitespace().nth(1).unwrap_or_default().to_owned();
                format!("{HOSTKEY_MARKER} {} {b64}", self.algorithm)
            }
            Err(_) => format!("{HOSTKEY_MARKER} {} <unparsable>", self.algorithm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_fresh_ed25519_in_openssh_format() {
        let a = ClientKey::generate().unwrap();
        let b = ClientKey::generate().unwrap();
        assert!(a
            .private_openssh()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(a
            .private_openssh()
            .trim_end()
            .ends_with("-----END OPENSSH PRIVATE KEY-----"));
        assert_ne!(a.private_openssh(), b.private_openssh());
        assert_ne!(a.authorized_keys(), b.authorized_keys());
        // The private key round-trips and matches the public half we hand to the guest.
        let parsed = PrivateKey::from_openssh(a.private_openssh()).unwrap();
        assert_eq!(parsed.algorithm(), Algorithm::Ed25519);
        let pub_line = parsed.public_key().to_openssh().unwrap();
        let b64 = pub_line.split_whitespace().nth(1).unwrap();
        assert_eq!(a.authorized_keys(), format!("ssh-ed25519 {b64} rig\n"));
        assert_eq!(
            a.kernel_cmdline_param(),
            format!("rig.ssh_key=ssh-ed25519:{b64}")
        );
        assert!(!a.kernel_cmdline_param().contains(' '));
        assert!(a.fingerprint().starts_with("SHA256:"));
        // Debug never shows the private key.
        assert!(!format!("{a:?}").contains("PRIVATE"));
    }

    #[test]
    fn host_key_marker_is_found_and_round_trips() {
        let key = ClientKey::generate().unwrap();
        let line = key.authorized_keys();
        let hk = HostKey::from_openssh(&line).unwrap();
        assert_eq!(hk.algorithm(), "ssh-ed25519");
        let console = format!(
            "[    1.0] random: crng init done\r\n{}\r\n[    1.2] e1000e: link up\r\nRIG-READY\r\n",
            hk.marker_line()
        );
        assert_eq!(HostKey::from_console(&console).unwrap(), hk);
        assert_eq!(HostKey::from_blob(hk.blob()).unwrap(), hk);
        // Interleaved after a printk on the same line.
        let console = format!("[    1.1] foo{}\n", hk.marker_line());
        assert_eq!(HostKey::from_console(&console).unwrap(), hk);
        // The last marker wins (a reboot prints a new one).
        let other =
            HostKey::from_openssh(&ClientKey::generate().unwrap().authorized_keys()).unwrap();
        let console = format!("{}\n{}\n", hk.marker_line(), other.marker_line());
        assert_eq!(HostKey::from_console(&console).unwrap(), other);
    }

    #[test]
    fn a_console_that_is_not_utf8_still_gives_its_key() {
        let hk = HostKey::from_openssh(&ClientKey::generate().unwrap().authorized_keys()).unwrap();
        let mut console = b"[    0.5] garbage \xff\xfe\xc3 from the guest\n".to_vec();
        console.extend_from_slice(hk.marker_line().as_bytes());
        console.extend_from_slice(b"\n\xff\n");
        assert!(std::str::from_utf8(&console).is_err());
        assert_eq!(HostKey::from_console_bytes(&console).unwrap(), hk);
    }

    #[test]
    fn missing_or_broken_markers_are_errors() {
        let e = HostKey::from_console("boot\nRIG-SSH-ERROR dropbear not found\nRIG-READY\n")
            .unwrap_err();
        assert!(matches!(e, SshError::NoHostKeyMarker { .. }));
        assert!(e.to_string().contains("dropbear not found"), "{e}");
        let e = HostKey::from_console("RIG-SSH-HOSTKEY ssh-ed25519 AAAAnotbase64!!\n").unwrap_err();
        assert!(matches!(e, SshError::BadHostKey { .. }), "{e:?}");
    }
}
