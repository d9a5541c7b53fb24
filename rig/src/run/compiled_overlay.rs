//! An overlay compiled on the host, named by its content: the state [`super::overlays`]'
//! steps keep in the step executor.

use sha2::{Digest, Sha256};

/// An overlay compiled on the host, and where this boot's guest has it.
#[derive(Debug, Clone)]
pub(super) struct CompiledOverlay {
    pub(super) dtbo: Vec<u8>,
    /// The guest path, named by content.
    pub(super) guest_path: String,
    /// Already in this boot's guest.
    pub(super) uploaded: bool,
}

impl CompiledOverlay {
    pub(super) fn new(dtbo: Vec<u8>) -> Self {
        let hash = hex::encode(Sha256::digest(&dtbo));
        CompiledOverlay {
            guest_path: format!("/tmp/rig-overlay-{}.dtbo", &hash[..32]),
            dtbo,
            uploaded: false,
        }
    }
}
