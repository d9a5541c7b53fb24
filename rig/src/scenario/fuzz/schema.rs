//! The scenario schema as the fuzzer sees it: hostile scalars, top-level keys, step kinds and
//! their fields, and a valid value for each field.

use super::valid_top;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;

/// Scalars chosen to break things.
pub(super) const HOSTILE: &[&str] = &[
    "nic1",
    "e1000e",
    "$(reboot)",
    "`id`",
    "a; rm -rf /",
    "x && touch /tmp/pwned",
    "a|b",
    "../../etc/passwd",
    "/etc/shadow",
    "simple-node.dtso",
    "../simple-node.dtso",
    "netdevsim/netdevsim10",
    "RIG-READY x",
    "\\u001b[2J",
    "\\0",
    "\\x1e",
    "é",
    "🦀",
    "-1",
    "0",
    "4294967296",
    "18446744073709551616",
    "1e308",
    "0x10",
    ".inf",
    "~",
    "true",
    "1s",
    "0s",
    "99999999999h",
    "500ms",
    "-3s",
    "1G",
    "128M",
    "0M",
    "16E",
    "/^INFO: task/",
    "/(/",
    "(a+)+$",
    "query-status",
    "human-monitor-command",
    "migrate",
    "device_add",
    "object-add",
    "vfio-pci",
    "loader",
    "romfile",
    "memory-backend-file",
    "memory-backend-ram",
    "usb-mtp",
    "qemu-xhci",
    "ipmi-bmc-sim",
    "pc-dimm",
    "virtio-mem-pci",
    "pcie-root-port",
    "rootdir",
    "sdrfile",
    "prealloc",
    "mem0",
    "52:54:00:12:34:56",
    "0x1f.7",
    "1099511627776",
    "134217728",
    "hvc",
    "serial",
    "ssh",
    "any",
    "movable",
    "driver_reinit",
    "x86_64-q35",
    "arm64-virt",
    "pci_hotplug",
    "of_overlay",
    "memory_hotplug",
];

pub(super) const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "boards",
    "requires",
    "cmdline",
    "timeout",
    "transport",
    "expect",
    "allow",
    "steps",
    "stepz",
    "devices",
    "trace",
];

pub(super) const KINDS: &[&str] = &[
    "guest",
    "qmp",
    "pci_hotplug",
    "pci_unplug",
    "overlay_load",
    "overlay_unload",
    "memory_add",
    "memory_remove",
    "memory_online",
    "memory_offline",
    "devlink_reload",
    "netdevsim_new",
    "netdevsim_del",
    "parallel",
    "repeat",
    "wait_log",
    "sleep",
    "reboot",
];

pub(super) const FIELDS: &[&str] = &[
    "name",
    "run",
    "timeout",
    "expect_status",
    "via",
    "execute",
    "arguments",
    "wait_event",
    "may_fail",
    "id",
    "driver",
    "port",
    "props",
    "file",
    "size",
    "wait",
    "zone",
    "dev",
    "action",
    "ports",
    "deadline",
    "steps",
    "times",
    "for",
    "regex",
    "since",
    "qom-type",
    "mem-path",
    "memdev",
    "mac",
    "bus",
    "addr",
    "rootdir",
    "prealloc",
    "uri",
    "command-line",
];

pub(super) struct Gen {
    pub(super) rng: ChaCha8Rng,
    pub(super) depth: usize,
}

/// A valid value for each field of the schema, by field name.
pub(super) fn valid_value(field: &str, rng: &mut ChaCha8Rng) -> &'static str {
    let pick = |rng: &mut ChaCha8Rng, v: &[&'static str]| v[rng.gen_range(0..v.len())];
    match field {
        "name" => pick(rng, &["work", "'a b'", "\"quoted\""]),
        "run" => pick(rng, &["'true'", "echo hi", "'sleep 1; echo x'"]),
        "timeout" | "deadline" | "for" => pick(rng, &["5s", "500ms", "1m30s"]),
        "expect_status" => pick(rng, &["0", "[0, 1]", "any"]),
        "via" => pick(rng, &["hvc", "serial", "ssh"]),
        "execute" => pick(rng, &["query-status", "stop", "device_del", "query-pci"]),
        "arguments" => pick(rng, &["{}", "{id: nic1}"]),
        "may_fail" | "wait" => pick(rng, &["true", "false"]),
        "id" => "nic1",
        "driver" => pick(
            rng,
            &["e1000e", "pci-testdev", "pcie-pci-bridge", "virtio-net-pci"],
        ),
        "port" => pick(rng, &["rp0", "rp3"]),
        "props" => pick(
            rng,
            &[
                "{}",
                "{mac: '52:54:00:12:34:56'}",
                "{addr: '0x0'}",
                "{multifunction: on}",
            ],
        ),
        "file" => pick(rng, &["simple-node.dtso", "clock-provider-consumer.dtso"]),
        "size" => pick(rng, &["128M", "1G"]),
        "zone" => pick(rng, &["movable", "kernel"]),
        "dev" => "netdevsim/netdevsim10",
        "action" => pick(rng, &["driver_reinit", "fw_activate"]),
        "ports" | "times" => pick(rng, &["1", "3"]),
        "regex" => pick(rng, &["'e1000e .* removed'", "x"]),
        "since" => pick(rng, &["step", "boot"]),
        _ => "x",
    }
}

/// The fields each step kind takes (a few required ones first).
pub(super) fn kind_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "guest" => &["run", "name", "timeout", "expect_status", "via"],
        "qmp" => &["execute", "arguments", "timeout", "may_fail"],
        "pci_hotplug" => &["id", "driver", "port", "props", "timeout", "may_fail"],
        "pci_unplug" | "overlay_unload" | "memory_offline" | "netdevsim_del" => &["id", "timeout"],
        "overlay_load" => &["file", "id", "timeout"],
        "memory_add" => &["id", "size", "timeout"],
        "memory_remove" => &["id", "wait"],
        "memory_online" => &["id", "zone"],
        "devlink_reload" => &["dev", "action", "via"],
        "netdevsim_new" => &["id", "ports", "via"],
        "wait_log" => &["regex", "timeout", "since"],
        _ => &["name"],
    }
}

impl Gen {
    /// A scalar chosen to break things, in a random YAML style.
    pub(super) fn hostile(&mut self) -> String {
        let s = match self.rng.gen_range(0..20) {
            0 => "x".repeat(self.rng.gen_range(1..20_000)),
            1 => format!("{}", self.rng.gen::<u64>()),
            2 => format!("-{}", self.rng.gen::<u32>()),
            3 => (0..self.rng.gen_range(1..40))
                .map(|_| char::from(self.rng.gen_range(0x20u8..0x7f)))
                .collect(),
            _ => HOSTILE[self.rng.gen_range(0..HOSTILE.len())].to_string(),
        };
        match self.rng.gen_range(0..4) {
            0 => format!("\"{}\"", s.replace('"', "\\\"")),
            _ if s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) =>
            {
                s
            }
            _ => rig_yaml::single_quoted(&s),
        }
    }

    /// Some value of any shape: scalar, list, mapping, steps.
    pub(super) fn any(&mut self) -> String {
        self.depth += 1;
        let v = if self.depth > 40 {
            self.hostile()
        } else {
            match self.rng.gen_range(0..8) {
                0 => {
                    let items: Vec<String> =
                        (0..self.rng.gen_range(0..4)).map(|_| self.any()).collect();
                    format!("[{}]", items.join(", "))
                }
                1 => {
                    let n = self.rng.gen_range(0..3);
                    let kv: Vec<String> = (0..n)
                        .map(|_| {
                            let k = FIELDS[self.rng.gen_range(0..FIELDS.len())];
                            format!("{k}: {}", self.any())
                        })
                        .collect();
                    format!("{{{}}}", kv.join(", "))
                }
                2 => self.steps(3),
                _ => self.hostile(),
            }
        };
        self.depth -= 1;
        v
    }

    /// A field's value: usually valid, sometimes hostile or of the wrong shape.
    pub(super) fn field(&mut self, field: &str) -> String {
        match self.rng.gen_range(0..16) {
            0 => self.hostile(),
            1 => self.any(),
            _ => valid_value(field, &mut self.rng).to_string(),
        }
    }

    pub(super) fn step(&mut self) -> String {
        // Mostly real kinds; sometimes a made-up one.
        let kind = KINDS[self.rng.gen_range(0..KINDS.len())];
        let body = match kind {
            "sleep" => self.field("timeout"),
            "qmp" if self.rng.gen_range(0..3) == 0 => self.qmp_create(),
            "parallel" | "repeat" => {
                let (count_key, count) = match (kind, self.rng.gen_bool(0.5)) {
                    ("parallel", _) => ("deadline", self.field("deadline")),
                    (_, true) => ("times", self.field("times")),
                    _ => ("for", self.field("for")),
                };
                let steps = self.steps(4);
                format!("{{{count_key}: {count}, steps: {steps}}}")
            }
            _ => {
                let fields = kind_fields(kind);
                let mut kv = Vec::new();
                for (i, f) in fields.iter().enumerate() {
                    // Required-looking first field nearly always; the others now and then.
                    if i == 0 || self.rng.gen_range(0..3) == 0 {
                        let v = match (*f, kind) {
                            ("id", "netdevsim_new" | "netdevsim_del")
                                if self.rng.gen_range(0..8) != 0 =>
                            {
                                "10".to_string()
                            }
                            ("id", k)
                                if k.starts_with("memory") && self.rng.gen_range(0..8) != 0 =>
                            {
                                "dimm0".to_string()
                            }
                            ("id", k)
                                if k.starts_with("overlay") && self.rng.gen_range(0..8) != 0 =>
                            {
                                "simple-node".to_string()
                            }
                            _ => self.field(f),
                        };
                        kv.push(format!("{f}: {v}"));
                    }
                }
                if self.rng.gen_range(0..15) == 0 {
                    let f = FIELDS[self.rng.gen_range(0..FIELDS.len())];
                    kv.push(format!("{f}: {}", self.field(f)));
                }
                format!("{{{}}}", kv.join(", "))
            }
        };
        format!("{{{kind}: {body}}}")
    }

    pub(super) fn steps(&mut self, max: usize) -> String {
        self.depth += 1;
        let n = if self.depth > 30 {
            0
        } else {
            self.rng.gen_range(0..=max)
        };
        let items: Vec<String> = (0..n).map(|_| self.step()).collect();
        self.depth -= 1;
        format!("[{}]", items.join(", "))
    }

    /// A property map: mostly keys of `allowed` with valid values, now and then a hostile key
    /// or value.
    fn props(&mut self, allowed: &[(&str, &str)]) -> Vec<String> {
        const HOSTILE_KEYS: &[&str] = &[
            "romfile",
            "rootdir",
            "sdrfile",
            "frudatafile",
            "file",
            "chardev",
            "netdev",
            "prealloc",
            "host-nodes",
            "x-foo",
            "rombar",
            "mem-path",
            "memdev",
        ];
        let mut kv = Vec::new();
        for _ in 0..self.rng.gen_range(0..3) {
            let (k, v) = match self.rng.gen_range(0..8) {
                0 => (
                    HOSTILE_KEYS[self.rng.gen_range(0..HOSTILE_KEYS.len())],
                    self.hostile(),
                ),
                1 if !allowed.is_empty() => {
                    let (k, _) = allowed[self.rng.gen_range(0..allowed.len())];
                    (k, self.hostile())
                }
                _ if !allowed.is_empty() => {
                    let (k, v) = allowed[self.rng.gen_range(0..allowed.len())];
                    (k, v.to_string())
                }
                _ => continue,
            };
            if !kv.iter().any(|e: &String| e.starts_with(&format!("{k}:"))) {
                kv.push(format!("{k}: {v}"));
            }
        }
        kv
    }

    /// A driver and valid values of its properties: usually one of the allow-list, sometimes
    /// one that reaches the host (with every property the allow-lists know).
    /// `boot`: for `devices:`, where memory devices are refused (mostly left out).
    fn driver(&mut self, boot: bool) -> (&'static str, Vec<(&'static str, &'static str)>) {
        const HOSTILE_DRIVERS: &[&str] = &[
            "usb-mtp",
            "qemu-xhci",
            "ipmi-bmc-sim",
            "vfio-pci",
            "loader",
            "virtio-9p-pci",
            "virtio-rng-pci",
            "nvme",
        ];
        let valid = |k: &str| match k {
            "mac" => "'52:54:00:12:34:56'",
            "bus" => "rp1",
            "addr" => "'0x3'",
            "multifunction" => "on",
            "chassis" => "9",
            "memdev" => "mem0",
            "requested-size" => "134217728",
            _ => "0",
        };
        let all = crate::scenario::validate::DEVICES;
        if self.rng.gen_range(0..6) == 0 {
            let d = HOSTILE_DRIVERS[self.rng.gen_range(0..HOSTILE_DRIVERS.len())];
            let props = all
                .iter()
                .flat_map(|d| d.prop_names())
                .map(|k| (k, valid(k)))
                .collect();
            return (d, props);
        }
        let pick: Vec<_> = all
            .iter()
            .filter(|d| !boot || !d.memory || self.rng.gen_range(0..8) == 0)
            .collect();
        let d = pick[self.rng.gen_range(0..pick.len())];
        (
            d.name,
            d.prop_names().into_iter().map(|k| (k, valid(k))).collect(),
        )
    }

    /// A `qmp` step that creates something: `device_add` or `object-add`.
    fn qmp_create(&mut self) -> String {
        if self.rng.gen_bool(0.5) {
            let (driver, props) = self.driver(false);
            let mut kv = vec![format!("driver: {driver}"), "id: dev0".to_string()];
            kv.extend(self.props(&props));
            format!("{{execute: device_add, arguments: {{{}}}}}", kv.join(", "))
        } else {
            let qom = [
                "memory-backend-ram",
                "memory-backend-ram",
                "memory-backend-file",
            ][self.rng.gen_range(0..3)];
            let size = ["134217728", "1073741824", "3221225472", "4294967296", "0"]
                [self.rng.gen_range(0..5)];
            let mut kv = vec![
                format!("qom-type: {qom}"),
                "id: mem0".into(),
                format!("size: {size}"),
            ];
            kv.extend(self.props(&[("share", "true"), ("merge", "off"), ("dump", "false")]));
            format!("{{execute: object-add, arguments: {{{}}}}}", kv.join(", "))
        }
    }

    /// A `devices:` list: `qemu` devices of the allow-list or not, virtio-mem devices.
    fn devices(&mut self) -> String {
        let mut items = Vec::new();
        for i in 0..self.rng.gen_range(1..3) {
            if self.rng.gen_range(0..4) == 0 {
                let size = ["1G", "128M", "1G", "4G"][self.rng.gen_range(0..4)];
                items.push(format!("{{virtio_mem: {{id: vmem{i}, size: {size}}}}}"));
                continue;
            }
            let (driver, props) = self.driver(true);
            let mut kv = vec![format!("driver: {driver}")];
            if self.rng.gen_bool(0.5) {
                kv.push(format!("id: dev{i}"));
            }
            let props = self.props(&props);
            if !props.is_empty() {
                kv.push(format!("props: {{{}}}", props.join(", ")));
            }
            items.push(format!("{{qemu: {{{}}}}}", kv.join(", ")));
        }
        format!("[{}]", items.join(", "))
    }

    /// A whole document: the top-level fields in block style, mostly valid.
    pub(super) fn document(&mut self) -> String {
        let mut doc = String::new();
        if self.rng.gen_range(0..4) != 0 {
            let _ = writeln!(
                doc,
                "requires: [pci_hotplug, netdevsim, devlink, of_overlay, virtio_mem]"
            );
        }
        if self.rng.gen_range(0..5) == 0 {
            let _ = writeln!(doc, "devices: {}", self.devices());
        }
        for _ in 0..self.rng.gen_range(0..4) {
            let key = TOP_KEYS[self.rng.gen_range(0..TOP_KEYS.len())];
            let v = match (key, self.rng.gen_range(0..3)) {
                ("steps", _) => continue,
                ("devices", 0 | 1) => self.devices(),
                ("name" | "description", 0) => self.hostile(),
                ("timeout", 0) => self.field("timeout"),
                (_, 0) => valid_top(key).into(),
                _ => self.any(),
            };
            let _ = writeln!(doc, "{key}: {v}");
        }
        let _ = writeln!(doc, "steps: {}", self.steps(5));
        doc
    }
}
