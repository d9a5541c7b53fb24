//! Validation of each step: the per-kind checks, and what may stand inside `parallel`.

use super::host::Place;
use super::{list, overlay_id, R, V};
use crate::host::board::HOTPLUG_ROOT_PORTS;
use crate::scenario::raw::{RawStatus, RawStep};
use crate::scenario::*;
use rig_yaml::Path;

impl V<'_> {
    pub(super) fn steps(&self, raw: Vec<RawStep>, path: &Path, within: Within) -> R<Vec<Step>> {
        if raw.is_empty() {
            return Err(self.err(path, "needs at least one step"));
        }
        raw.into_iter()
            .enumerate()
            .map(|(i, s)| self.step(s, &path.index(i), within))
            .collect()
    }

    fn step(&self, raw: RawStep, path: &Path, within: Within) -> R<Step> {
        let kind_name = raw.kind_name();
        let kp = path.key(kind_name);
        if let Some(why) = within.refuses(kind_name) {
            return Err(self.err_key(&kp, why));
        }
        let mut at = self.location(&kp, true);
        at.path = path.to_string();
        if let Some(f) = self.implied_feature(&raw) {
            if !self.requires.contains(&f) {
                return Err(self.err_key(
                    &kp,
                    format!("`{kind_name}` steps need `{f}` in the scenario's `requires`"),
                ));
            }
        }
        let mut may_fail = false;
        let default_timeout = !raw.timeout_given();
        let (name, kind) = match raw {
            RawStep::Guest(g) => {
                if g.run.trim().is_empty() {
                    return Err(self.err(&kp.key("run"), "empty command"));
                }
                let expect_status = match g.expect_status {
                    None => ExpectStatus::OneOf(vec![0]),
                    Some(RawStatus::Any) => ExpectStatus::Any,
                    Some(RawStatus::OneOf(v)) => {
                        let sp = kp.key("expect_status");
                        if v.is_empty() {
                            return Err(self.err(&sp, "empty list of exit statuses"));
                        }
                        let mut out = Vec::new();
                        for s in v {
                            match i32::try_from(s) {
                                Ok(s) if (0..=255).contains(&s) => out.push(s),
                                _ => {
                                    return Err(
                                        self.err(&sp, format!("exit status {s} is outside 0-255"))
                                    )
                                }
                            }
                        }
                        ExpectStatus::OneOf(out)
                    }
                };
                (
                    self.name(g.name, &kp)?,
                    StepKind::Guest(GuestStep {
                        run: g.run,
                        timeout: self.timeout(g.timeout, defaults::GUEST_TIMEOUT, &kp)?,
                        expect_status,
                        via: self.via(g.via, &kp.key("via")),
                    }),
                )
            }
            RawStep::Qmp(q) => {
                may_fail = q.may_fail;
                let arguments = q.arguments.unwrap_or_default();
                self.qmp_command(&q.execute, &arguments, &kp)?;
                let wait_event = match q.wait_event {
                    None => None,
                    Some(w) => {
                        let ok = !w.event.is_empty()
                            && w.event
                                .chars()
                                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                        if !ok {
                            return Err(self.err(
                                &kp.key("wait_event").key("event"),
                                format!(
                                    "invalid QMP event name `{}` (events are upper case, like DEVICE_DELETED)",
                                    w.event
                                ),
                            ));
                        }
                        Some(EventWait {
                            event: w.event,
                            data: w.data.unwrap_or_default(),
                        })
                    }
                };
                (
                    self.name(q.name, &kp)?,
                    StepKind::Qmp(QmpStep {
                        execute: q.execute,
                        arguments,
                        wait_event,
                        timeout: self.timeout(q.timeout, defaults::QMP_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::PciHotplug(p) => {
                may_fail = p.may_fail;
                self.qemu_id(&p.id, &kp.key("id"))?;
                if let Some(port) = &p.port {
                    let ports: Vec<String> =
                        (0..HOTPLUG_ROOT_PORTS).map(Board::root_port_id).collect();
                    if !ports.contains(port) {
                        return Err(self.err(
                            &kp.key("port"),
                            format!("unknown root port `{port}` (known: {})", ports.join(", ")),
                        ));
                    }
                }
                let props = p.props.unwrap_or_default();
                for (k, v) in &props {
                    if v.is_object() || v.is_array() || v.is_null() {
                        return Err(self.err(
                            &kp.key("props").key(k),
                            "device properties are strings, numbers or booleans",
                        ));
                    }
                    if matches!(k.as_str(), "id" | "driver" | "bus") {
                        return Err(self.err_key(
                            &kp.key("props").key(k),
                            format!("`{k}` is set by the step itself, not in props"),
                        ));
                    }
                }
                self.device(
                    &p.driver,
                    &props,
                    (&kp.key("driver"), &kp.key("props")),
                    Place::Hotplug,
                )?;
                (
                    self.name(p.name, &kp)?,
                    StepKind::PciHotplug(PciHotplugStep {
                        id: p.id,
                        driver: p.driver,
                        port: p.port,
                        props,
                        timeout: self.timeout(p.timeout, defaults::PCI_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::PciUnplug(p) => {
                may_fail = p.may_fail;
                self.known_id(&p.id, &self.ids.pci, "pci_hotplug", &kp.key("id"))?;
                (
                    self.name(p.name, &kp)?,
                    StepKind::PciUnplug(PciUnplugStep {
                        id: p.id,
                        timeout: self.timeout(p.timeout, defaults::PCI_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::OverlayLoad(o) => {
                may_fail = o.may_fail;
                let id = overlay_id(&o);
                let file = self.overlay_file(&o.file, &kp.key("file"))?;
                let id_ok = !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
                if !id_ok {
                    return Err(self.err(
                        &kp.key(if o.id.is_some() { "id" } else { "file" }),
                        format!("invalid overlay id `{id}` (letters, digits, `-`, `.`, `_`)"),
                    ));
                }
                if let Some(dev) = &o.under_pci {
                    self.known_id(dev, &self.ids.pci, "pci_hotplug", &kp.key("under_pci"))?;
                }
                (
                    self.name(o.name, &kp)?,
                    StepKind::OverlayLoad(OverlayLoadStep {
                        file,
                        id,
                        under_pci: o.under_pci,
                        timeout: self.timeout(o.timeout, defaults::OVERLAY_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::OverlayUnload(o) => {
                may_fail = o.may_fail;
                self.known_id(&o.id, &self.ids.overlays, "overlay_load", &kp.key("id"))?;
                (
                    self.name(o.name, &kp)?,
                    StepKind::OverlayUnload(OverlayUnloadStep {
                        id: o.id,
                        timeout: self.timeout(o.timeout, defaults::OVERLAY_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::MemoryAdd(m) => {
                may_fail = m.may_fail;
                self.qemu_id(&m.id, &kp.key("id"))?;
                let size = m.size.0;
                if size == 0 {
                    return Err(self.err(&kp.key("size"), "size must be more than 0"));
                }
                if size > super::allow::HOTPLUG_ROOM {
                    return Err(self.err(
                        &kp.key("size"),
                        format!(
                            "size must be at most {} MiB (the boards' hot-plug room)",
                            super::allow::HOTPLUG_ROOM >> 20
                        ),
                    ));
                }
                for b in &self.boards {
                    let block = b.memory_block_mib() << 20;
                    if size % block != 0 {
                        return Err(self.err(
                            &kp.key("size"),
                            format!(
                                "size must be a multiple of {b}'s memory block size ({} MiB)",
                                b.memory_block_mib()
                            ),
                        ));
                    }
                }
                self.add_memory(&format!("DIMM {}", m.id), size, &kp.key("size"))?;
                (
                    self.name(m.name, &kp)?,
                    StepKind::MemoryAdd(MemoryAddStep {
                        id: m.id,
                        size_bytes: size,
                        timeout: self.timeout(m.timeout, defaults::MEMORY_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::MemoryRemove(m) => {
                may_fail = m.may_fail;
                self.known_id(&m.id, &self.ids.dimms, "memory_add", &kp.key("id"))?;
                (
                    self.name(m.name, &kp)?,
                    StepKind::MemoryRemove(MemoryRemoveStep {
                        id: m.id,
                        wait: m.wait.unwrap_or(true),
                        timeout: self.timeout(m.timeout, defaults::MEMORY_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::MemoryOnline(m) => {
                may_fail = m.may_fail;
                self.memory_id(&m.id, &kp.key("id"))?;
                (
                    self.name(m.name, &kp)?,
                    StepKind::MemoryOnline(MemoryOnlineStep {
                        id: m.id,
                        zone: m.zone.unwrap_or_default(),
                        timeout: self.timeout(m.timeout, defaults::MEMORY_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::MemoryOffline(m) => {
                may_fail = m.may_fail;
                self.memory_id(&m.id, &kp.key("id"))?;
                (
                    self.name(m.name, &kp)?,
                    StepKind::MemoryOffline(MemoryOfflineStep {
                        id: m.id,
                        timeout: self.timeout(m.timeout, defaults::MEMORY_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::DevlinkReload(d) => {
                may_fail = d.may_fail;
                let ok = d.dev.split('/').count() == 2
                    && d.dev.split('/').all(|p| !p.is_empty())
                    && !d
                        .dev
                        .chars()
                        .any(|c| c.is_whitespace() || c == '\'' || c == '"');
                if !ok {
                    return Err(self.err(
                        &kp.key("dev"),
                        format!("invalid devlink handle `{}` (write BUS/NAME, e.g. netdevsim/netdevsim10)", d.dev),
                    ));
                }
                (
                    self.name(d.name, &kp)?,
                    StepKind::DevlinkReload(DevlinkReloadStep {
                        dev: d.dev,
                        action: d.action.unwrap_or_default(),
                        via: self.via(d.via, &kp.key("via")),
                        timeout: self.timeout(d.timeout, defaults::DEVLINK_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::NetdevsimNew(n) => {
                may_fail = n.may_fail;
                let ports = n.ports.unwrap_or(1);
                if ports == 0 {
                    return Err(
                        self.err(&kp.key("ports"), "a netdevsim device needs at least 1 port")
                    );
                }
                (
                    self.name(n.name, &kp)?,
                    StepKind::NetdevsimNew(NetdevsimNewStep {
                        id: n.id,
                        ports,
                        via: self.via(n.via, &kp.key("via")),
                        timeout: self.timeout(n.timeout, defaults::NETDEVSIM_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::NetdevsimDel(n) => {
                may_fail = n.may_fail;
                if !self.ids.netdevsim.contains(&n.id) {
                    return Err(self.err(
                        &kp.key("id"),
                        format!(
                            "no netdevsim_new step creates device {} (created: {})",
                            n.id,
                            list(&self.ids.netdevsim)
                        ),
                    ));
                }
                (
                    self.name(n.name, &kp)?,
                    StepKind::NetdevsimDel(NetdevsimDelStep {
                        id: n.id,
                        via: self.via(n.via, &kp.key("via")),
                        timeout: self.timeout(n.timeout, defaults::NETDEVSIM_TIMEOUT, &kp)?,
                    }),
                )
            }
            RawStep::Parallel(p) => {
                if p.steps.len() < 2 {
                    return Err(self.err(
                        &kp.key("steps"),
                        "`parallel` needs at least two steps to race",
                    ));
                }
                let deadline =
                    self.duration(Some(p.deadline), Duration::ZERO, &kp.key("deadline"))?;
                if let Some(st) = p.stagger.filter(|s| s.0.max >= deadline) {
                    return Err(self.err(
                        &kp.key("stagger"),
                        format!(
                            "the stagger's high end ({:?}) must be below the deadline ({:?})",
                            st.0.max, deadline
                        ),
                    ));
                }
                (
                    self.name(p.name, &kp)?,
                    StepKind::Parallel(ParallelStep {
                        deadline,
                        stagger: p.stagger.map(|s| s.0),
                        steps: self.steps(p.steps, &kp.key("steps"), Within::Parallel)?,
                    }),
                )
            }
            RawStep::Repeat(r) => {
                let count = match (r.times, r.for_) {
                    (Some(_), Some(_)) => {
                        return Err(
                            self.err_key(&kp.key("for"), "give either `times` or `for`, not both")
                        )
                    }
                    (None, None) => {
                        return Err(self.err(&kp, "needs `times: N` or `for: DURATION`"));
                    }
                    (Some(0), None) => {
                        return Err(self.err(&kp.key("times"), "must be at least 1"));
                    }
                    (Some(n), None) => RepeatCount::Times(n),
                    (None, Some(d)) => {
                        RepeatCount::For(self.duration(Some(d), Duration::ZERO, &kp.key("for"))?)
                    }
                };
                (
                    self.name(r.name, &kp)?,
                    StepKind::Repeat(RepeatStep {
                        count,
                        steps: self.steps(r.steps, &kp.key("steps"), within.repeat())?,
                    }),
                )
            }
            RawStep::WaitLog(w) => (
                self.name(w.name, &kp)?,
                StepKind::WaitLog(WaitLogStep {
                    regex: w.regex.0,
                    timeout: self.timeout(w.timeout, defaults::WAIT_LOG_TIMEOUT, &kp)?,
                    since: w.since.unwrap_or_default(),
                }),
            ),
            RawStep::MemoryResize(m) => {
                may_fail = m.may_fail;
                self.memory_resize(m, &kp)?
            }
            RawStep::OfUnittest(u) => self.of_unittest(u, &kp)?,
            RawStep::Sleep(d) => (
                None,
                StepKind::Sleep(self.duration(Some(d), Duration::ZERO, &kp)?),
            ),
        };
        Ok(Step {
            name,
            may_fail,
            default_timeout,
            at,
            kind,
        })
    }
}

/// Where a step sits, for what may run there. Inside `parallel`, guest-side children become
/// background jobs of the guest shell and host-side ones (QMP, removals, sleeps) run on a host
/// thread; steps that set something up and wait for the guest to agree cannot race there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Within {
    Top,
    /// A direct child of `parallel`.
    Parallel,
    /// Inside a `repeat` inside `parallel`: one guest background job loops over these.
    GuestJob,
}

impl Within {
    fn repeat(self) -> Within {
        match self {
            Within::Top => Within::Top,
            Within::Parallel | Within::GuestJob => Within::GuestJob,
        }
    }

    /// Why a step of kind `kind` cannot be here, if it cannot.
    fn refuses(self, kind: &str) -> Option<String> {
        const SETUP: [&str; 5] = [
            "pci_hotplug",
            "memory_add",
            "overlay_load",
            "wait_log",
            "of_unittest",
        ];
        const HOST: [&str; 4] = ["qmp", "memory_remove", "pci_unplug", "memory_resize"];
        match self {
            Within::Top => None,
            _ if kind == "parallel" => Some(
                "`parallel` cannot nest inside another `parallel`; list all racing steps in one"
                    .into(),
            ),
            _ if SETUP.contains(&kind) => Some(format!(
                "`{kind}` cannot run inside `parallel`: it sets something up and waits for the \
                 guest; put it before the `parallel`"
            )),
            Within::GuestJob if HOST.contains(&kind) => Some(format!(
                "`{kind}` runs on the host and cannot be repeated inside a guest job; inside \
                 `parallel`, `repeat` may only hold guest-side steps (guest, memory_online, \
                 memory_offline, devlink_reload, netdevsim_new, netdevsim_del, overlay_unload, \
                 sleep)"
            )),
            _ => None,
        }
    }
}
