//! The allow-lists of what a scenario may create in QEMU: device drivers, each with the
//! properties it takes, and memory backends (`object-add`). Anything not listed here is refused, and every listed property's value is
//! checked ([`Value`]). The lists hold what the shipped scenarios, the matrix and the tests use;
//! a new driver or property is added here (with its README row) after checking that it reaches
//! nothing on the host: no host file, socket, device, fd, backend or thread.

use crate::host::board::{DEFAULT_MEMORY_MIB, DIMM_SLOTS, MAX_MEMORY_MIB};

/// What the boards leave for hot-plugged memory, bytes: `maxmem` minus what a run boots with
/// (the default, or up to twice that with `--memory`). Every RAM backend a scenario adds
/// (virtio-mem devices, `memory_add` DIMMs, `object-add` backends) counts against it.
pub(crate) const HOTPLUG_ROOM: u64 = (MAX_MEMORY_MIB - 2 * DEFAULT_MEMORY_MIB) << 20;

/// What a property's (or QMP argument's) value may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    /// A QEMU id or bus name: a letter, then letters, digits, `-`, `.`, `_`.
    Id,
    /// A MAC address, `52:54:00:12:34:56`.
    Mac,
    /// A PCI slot and function, as text: `0x3`, `3`, `03.1` (slot 0–0x1f, function 0–7).
    PciAddr,
    /// A switch: `on`/`off`, `true`/`false` or a boolean.
    Switch,
    /// An integer in this range (inclusive).
    Int(u64, u64),
    /// A byte count: an integer from 1 to [`HOTPLUG_ROOM`].
    Bytes,
    /// The id of a memory backend this scenario creates with QMP `object-add`.
    Memdev,
}

impl Value {
    /// What the value must look like, for error messages and the README.
    pub(crate) fn describe(self) -> String {
        match self {
            Value::Id => "a QEMU id (a letter, then letters, digits, `-`, `.`, `_`)".into(),
            Value::Mac => "a MAC address like `52:54:00:12:34:56`".into(),
            Value::PciAddr => "a PCI slot[.function] like `0x3` or `03.1`".into(),
            Value::Switch => "`on`, `off`, `true` or `false`".into(),
            Value::Int(lo, hi) => format!("an integer from {lo} to {hi}"),
            Value::Bytes => format!(
                "a byte count (an integer) from 1 to {} ({} MiB)",
                HOTPLUG_ROOM,
                HOTPLUG_ROOM >> 20
            ),
            Value::Memdev => {
                "the id of a memory backend this scenario's `object-add` creates".into()
            }
        }
    }

    /// Whether `v` is such a value (`Memdev`: its form only; the caller checks that the id
    /// exists).
    pub(crate) fn accepts(self, v: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match (self, v) {
            (Value::Id | Value::Memdev, J::String(s)) => qemu_id(s),
            (Value::Mac, J::String(s)) => mac(s),
            (Value::PciAddr, J::String(s)) => pci_addr(s),
            (Value::Switch, J::Bool(_)) => true,
            (Value::Switch, J::String(s)) => matches!(s.as_str(), "on" | "off" | "true" | "false"),
            (Value::Int(lo, hi), J::Number(n)) => {
                n.as_u64().is_some_and(|n| (lo..=hi).contains(&n))
            }
            (Value::Int(lo, hi), J::String(s)) => {
                s.parse::<u64>().is_ok_and(|n| (lo..=hi).contains(&n))
            }
            (Value::Bytes, _) => bytes(v).is_some(),
            _ => false,
        }
    }
}

/// A byte count [`Value::Bytes`] accepts.
pub(crate) fn bytes(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().filter(|n| (1..=HOTPLUG_ROOM).contains(n))
}

/// A QEMU id: a letter, then letters, digits, `-`, `.`, `_`.
pub(crate) fn qemu_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn pci_addr(s: &str) -> bool {
    let (slot, func) = match s.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (s, None),
    };
    let digits = slot
        .strip_prefix("0x")
        .or_else(|| slot.strip_prefix("0X"))
        .unwrap_or(slot);
    let slot_ok =
        (1..=2).contains(&digits.len()) && u8::from_str_radix(digits, 16).is_ok_and(|n| n <= 0x1f);
    let func_ok = func.is_none_or(|f| f.len() == 1 && matches!(f.as_bytes()[0], b'0'..=b'7'));
    slot_ok && func_ok
}

/// A device a scenario may add, with the properties it may set.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) name: &'static str,
    /// A PCI device: also takes [`PCI_PROPS`].
    pub(crate) pci: bool,
    /// Needs a memory backend (`memdev`): only from QMP `device_add`, after an `object-add`.
    pub(crate) memory: bool,
    pub(crate) props: &'static [(&'static str, Value)],
}

/// Properties every PCI device of [`DEVICES`] takes.
pub(crate) const PCI_PROPS: &[(&str, Value)] = &[
    ("bus", Value::Id),
    ("addr", Value::PciAddr),
    ("multifunction", Value::Switch),
];

/// The devices scenarios may add (`devices: [{qemu: …}]`, `pci_hotplug`, QMP `device_add`).
pub(crate) const DEVICES: &[Driver] = &[
    Driver {
        name: "e1000e",
        pci: true,
        memory: false,
        props: &[("mac", Value::Mac)],
    },
    Driver {
        name: "virtio-net-pci",
        pci: true,
        memory: false,
        props: &[("mac", Value::Mac)],
    },
    Driver {
        name: "pci-testdev",
        pci: true,
        memory: false,
        props: &[],
    },
    Driver {
        name: "pcie-pci-bridge",
        pci: true,
        memory: false,
        props: &[],
    },
    Driver {
        name: "pcie-root-port",
        pci: true,
        memory: false,
        props: &[
            ("chassis", Value::Int(0, 255)),
            ("slot", Value::Int(0, 255)),
            ("port", Value::Int(0, 255)),
        ],
    },
    Driver {
        name: "virtio-mem-pci",
        pci: true,
        memory: true,
        props: &[("memdev", Value::Memdev), ("requested-size", Value::Bytes)],
    },
    Driver {
        name: "pc-dimm",
        pci: false,
        memory: true,
        props: &[
            ("memdev", Value::Memdev),
            ("slot", Value::Int(0, DIMM_SLOTS as u64 - 1)),
        ],
    },
];

pub(crate) fn driver(name: &str) -> Option<&'static Driver> {
    DEVICES.iter().find(|d| d.name == name)
}

impl Driver {
    /// The kind of value property `prop` takes, if the driver takes it.
    pub(crate) fn prop(&self, prop: &str) -> Option<Value> {
        let pci: &[(&str, Value)] = if self.pci { PCI_PROPS } else { &[] };
        self.props
            .iter()
            .chain(pci)
            .find(|(k, _)| *k == prop)
            .map(|(_, v)| *v)
    }

    pub(crate) fn prop_names(&self) -> Vec<&'static str> {
        let pci: &[(&str, Value)] = if self.pci { PCI_PROPS } else { &[] };
        self.props.iter().chain(pci).map(|(k, _)| *k).collect()
    }
}

/// The one object type `object-add` may create: anonymous guest RAM.
pub(crate) const OBJECT_TYPE: &str = "memory-backend-ram";

/// Its properties (`qom-type` and `id` besides). Not `prealloc` (QEMU would touch every page of
/// the backend on the host at once, before the guest asks), nor `host-nodes`/`policy` (host
/// NUMA binding), `reserve`, `prealloc-threads`, `x-*`.
pub(crate) const OBJECT_PROPS: &[(&str, Value)] = &[
    ("size", Value::Bytes),
    ("share", Value::Switch),
    ("merge", Value::Switch),
    ("dump", Value::Switch),
];

/// Why a driver rig refuses is dangerous, when it is a known way into the host (for the error
/// message only: anything not in [`DEVICES`] is refused whatever its name).
pub(crate) fn host_reach(driver: &str) -> Option<&'static str> {
    const KINDS: &[&str] = &[
        "vfio",
        "vhost",
        "loader",
        "guest-loader",
        "usb-host",
        "usb-mtp",
        "pci-assign",
        "ivshmem",
        "virtio-9p",
        "u2f-passthru",
        "ccid-card-passthru",
        "xen",
        "nvdimm",
        "tpm",
        "ipmi-bmc",
        "virtio-blk",
        "scsi",
        "ide",
        "nvme",
        "usb-storage",
        "vhost-user",
        "virtio-fs",
    ];
    KINDS
        .iter()
        .copied()
        .find(|k| driver == *k || driver.starts_with(&format!("{k}-")))
}

/// Properties that name a host file, socket, fd or QEMU backend (for the error message only).
pub(crate) fn names_host(prop: &str) -> bool {
    const PROPS: &[&str] = &[
        "romfile",
        "file",
        "filename",
        "path",
        "mem-path",
        "rootdir",
        "sdrfile",
        "frudatafile",
        "host",
        "hostaddr",
        "hostbus",
        "hostport",
        "hostdevice",
        "sysfsdev",
        "fd",
        "vhostfd",
        "vhostfds",
        "chardev",
        "drive",
        "netdev",
        "fsdev",
        "memdev",
        "script",
        "downscript",
        "iommufd",
        "rng",
    ];
    PROPS.contains(&prop) || prop.starts_with("x-")
}
