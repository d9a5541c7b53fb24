//! Raw scenario → [`Scenario`]: the checks that need more than one field, the overlay
//! directory, or the rest of the file. Each error points at the field it is about.

use super::raw::{self, HumanDuration, RawStatus, RawStep};
use super::*;
use crate::host::board::{DIMM_SLOTS, HOTPLUG_ROOT_PORTS};
use rig_yaml::{Node, Path};
use std::collections::BTreeSet;

type R<T> = Result<T, ScenarioError>;

impl RawStep {
    fn kind_name(&self) -> &'static str {
        match self {
            RawStep::Guest(_) => "guest",
            RawStep::Qmp(_) => "qmp",
            RawStep::PciHotplug(_) => "pci_hotplug",
            RawStep::PciUnplug(_) => "pci_unplug",
            RawStep::OverlayLoad(_) => "overlay_load",
            RawStep::OverlayUnload(_) => "overlay_unload",
            RawStep::MemoryAdd(_) => "memory_add",
            RawStep::MemoryRemove(_) => "memory_remove",
            RawStep::MemoryOnline(_) => "memory_online",
            RawStep::MemoryOffline(_) => "memory_offline",
            RawStep::DevlinkReload(_) => "devlink_reload",
            RawStep::NetdevsimNew(_) => "netdevsim_new",
            RawStep::NetdevsimDel(_) => "netdevsim_del",
            RawStep::Parallel(_) => "parallel",
            RawStep::Repeat(_) => "repeat",
            RawStep::WaitLog(_) => "wait_log",
            RawStep::Sleep(_) => "sleep",
        }
    }

    /// The feature a step of this kind cannot run without.
    fn implied_feature(&self) -> Option<Feature> {
        match self {
            RawStep::PciHotplug(_) | RawStep::PciUnplug(_) => Some(Feature::PciHotplug),
            RawStep::OverlayLoad(_) | RawStep::OverlayUnload(_) => Some(Feature::OfOverlay),
            RawStep::MemoryAdd(_)
            | RawStep::MemoryRemove(_)
            | RawStep::MemoryOnline(_)
            | RawStep::MemoryOffline(_) => Some(Feature::MemoryHotplug),
            RawStep::DevlinkReload(_) => Some(Feature::Devlink),
            RawStep::NetdevsimNew(_) | RawStep::NetdevsimDel(_) => Some(Feature::Netdevsim),
            _ => None,
        }
    }

    /// Whether the file gave this step a timeout (steps without one have none to give).
    fn timeout_given(&self) -> bool {
        match self {
            RawStep::Guest(x) => x.timeout.is_some(),
            RawStep::Qmp(x) => x.timeout.is_some(),
            RawStep::PciHotplug(x) => x.timeout.is_some(),
            RawStep::PciUnplug(x) => x.timeout.is_some(),
            RawStep::OverlayLoad(x) => x.timeout.is_some(),
            RawStep::OverlayUnload(x) => x.timeout.is_some(),
            RawStep::MemoryAdd(x) => x.timeout.is_some(),
            RawStep::MemoryRemove(x) => x.timeout.is_some(),
            RawStep::MemoryOnline(x) => x.timeout.is_some(),
            RawStep::MemoryOffline(x) => x.timeout.is_some(),
            RawStep::DevlinkReload(x) => x.timeout.is_some(),
            RawStep::NetdevsimNew(x) => x.timeout.is_some(),
            RawStep::NetdevsimDel(x) => x.timeout.is_some(),
            RawStep::WaitLog(x) => x.timeout.is_some(),
            RawStep::Parallel(_) | RawStep::Repeat(_) | RawStep::Sleep(_) => true,
        }
    }

    fn children(&self) -> &[RawStep] {
        match self {
            RawStep::Parallel(p) => &p.steps,
            RawStep::Repeat(r) => &r.steps,
            _ => &[],
        }
    }
}

/// Ids the scenario creates, so later steps can be checked against them.
#[derive(Default)]
struct Ids {
    pci: BTreeSet<String>,
    overlays: BTreeSet<String>,
    dimms: BTreeSet<String>,
    netdevsim: BTreeSet<u32>,
}

fn overlay_id(o: &raw::RawOverlayLoad) -> String {
    o.id.clone().unwrap_or_else(|| {
        std::path::Path::new(&o.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

fn collect_ids(steps: &[RawStep], ids: &mut Ids) {
    for s in steps {
        match s {
            RawStep::PciHotplug(p) => {
                ids.pci.insert(p.id.clone());
            }
            RawStep::OverlayLoad(o) => {
                ids.overlays.insert(overlay_id(o));
            }
            RawStep::MemoryAdd(m) => {
                ids.dimms.insert(m.id.clone());
            }
            RawStep::NetdevsimNew(n) => {
                ids.netdevsim.insert(n.id);
            }
            _ => {}
        }
        collect_ids(s.children(), ids);
    }
}

fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

struct V<'a> {
    tree: &'a Node,
    file: &'a str,
    overlays_dir: &'a std::path::Path,
    transport: Via,
    requires: Vec<Feature>,
    boards: Vec<Board>,
    ids: Ids,
}

impl V<'_> {
    fn location(&self, path: &Path, key: bool) -> Location {
        let mark = if key {
            self.tree.locate_key(path)
        } else {
            self.tree.locate(path)
        };
        Location {
            file: self.file.to_string(),
            line: mark.line,
            column: mark.column,
            path: path.to_string(),
        }
    }

    fn error(&self, loc: Location, message: String) -> ScenarioError {
        ScenarioError::Invalid {
            file: loc.file,
            line: loc.line,
            column: loc.column,
            path: loc.path,
            message,
        }
    }

    /// An error about the value at `path`.
    fn err(&self, path: &Path, message: impl Into<String>) -> ScenarioError {
        self.error(self.location(path, false), message.into())
    }

    /// An error about the key that ends `path`.
    fn err_key(&self, path: &Path, message: impl Into<String>) -> ScenarioError {
        self.error(self.location(path, true), message.into())
    }

    fn duration(&self, d: Option<HumanDuration>, default: Duration, path: &Path) -> R<Duration> {
        match d {
            None => Ok(default),
            Some(HumanDuration(d)) if d.is_zero() => Err(self.err(path, "must be longer than 0s")),
            Some(HumanDuration(d)) => Ok(d),
        }
    }

    fn name(&self, name: Option<String>, path: &Path) -> R<Option<String>> {
        match name {
            Some(n) if n.trim().is_empty() => Err(self.err(&path.key("name"), "empty name")),
            n => Ok(n),
        }
    }

    fn qemu_id(&self, id: &str, path: &Path) -> R<()> {
        let mut chars = id.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if ok {
            Ok(())
        } else {
            Err(self.err(
                path,
                format!("invalid id `{id}`: QEMU ids start with a letter and hold letters, digits, `-`, `.`, `_`"),
            ))
        }
    }

    fn known_id(&self, id: &str, set: &BTreeSet<String>, what: &str, path: &Path) -> R<()> {
        if set.contains(id) {
            Ok(())
        } else {
            Err(self.err(
                path,
                format!("no {what} step creates `{id}` (created: {})", list(set)),
            ))
        }
    }

    fn via(&self, v: Option<Via>) -> Via {
        v.unwrap_or(self.transport)
    }

    fn steps(&self, raw: Vec<RawStep>, path: &Path, within: Within) -> R<Vec<Step>> {
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
        if let Some(f) = raw.implied_feature() {
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
                        timeout: self.duration(
                            g.timeout,
                            defaults::GUEST_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
                        expect_status,
                        via: self.via(g.via),
                    }),
                )
            }
            RawStep::Qmp(q) => {
                may_fail = q.may_fail;
                let ok = !q.execute.is_empty()
                    && q.execute
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
                if !ok {
                    return Err(self.err(
                        &kp.key("execute"),
                        format!("invalid QMP command name `{}`", q.execute),
                    ));
                }
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
                        arguments: q.arguments.unwrap_or_default(),
                        wait_event,
                        timeout: self.duration(
                            q.timeout,
                            defaults::QMP_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
                    }),
                )
            }
            RawStep::PciHotplug(p) => {
                may_fail = p.may_fail;
                self.qemu_id(&p.id, &kp.key("id"))?;
                let ok = !p.driver.is_empty()
                    && p.driver
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ','));
                if !ok {
                    return Err(self.err(
                        &kp.key("driver"),
                        format!("invalid QEMU device driver `{}`", p.driver),
                    ));
                }
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
                (
                    self.name(p.name, &kp)?,
                    StepKind::PciHotplug(PciHotplugStep {
                        id: p.id,
                        driver: p.driver,
                        port: p.port,
                        props,
                        timeout: self.duration(
                            p.timeout,
                            defaults::PCI_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
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
                        timeout: self.duration(
                            p.timeout,
                            defaults::PCI_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
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
                (
                    self.name(o.name, &kp)?,
                    StepKind::OverlayLoad(OverlayLoadStep {
                        file,
                        id,
                        timeout: self.duration(
                            o.timeout,
                            defaults::OVERLAY_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
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
                        timeout: self.duration(
                            o.timeout,
                            defaults::OVERLAY_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
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
                (
                    self.name(m.name, &kp)?,
                    StepKind::MemoryAdd(MemoryAddStep {
                        id: m.id,
                        size_bytes: size,
                        timeout: self.duration(
                            m.timeout,
                            defaults::MEMORY_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
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
                        timeout: self.duration(
                            m.timeout,
                            defaults::MEMORY_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
                    }),
                )
            }
            RawStep::MemoryOnline(m) => {
                may_fail = m.may_fail;
                self.known_id(&m.id, &self.ids.dimms, "memory_add", &kp.key("id"))?;
                (
                    self.name(m.name, &kp)?,
                    StepKind::MemoryOnline(MemoryOnlineStep {
                        id: m.id,
                        zone: m.zone.unwrap_or_default(),
                        timeout: self.duration(
                            m.timeout,
                            defaults::MEMORY_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
                    }),
                )
            }
            RawStep::MemoryOffline(m) => {
                may_fail = m.may_fail;
                self.known_id(&m.id, &self.ids.dimms, "memory_add", &kp.key("id"))?;
                (
                    self.name(m.name, &kp)?,
                    StepKind::MemoryOffline(MemoryOfflineStep {
                        id: m.id,
                        timeout: self.duration(
                            m.timeout,
                            defaults::MEMORY_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
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
                        via: self.via(d.via),
                        timeout: self.duration(
                            d.timeout,
                            defaults::DEVLINK_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
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
                        via: self.via(n.via),
                        timeout: self.duration(
                            n.timeout,
                            defaults::NETDEVSIM_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
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
                        via: self.via(n.via),
                        timeout: self.duration(
                            n.timeout,
                            defaults::NETDEVSIM_TIMEOUT,
                            &kp.key("timeout"),
                        )?,
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
                (
                    self.name(p.name, &kp)?,
                    StepKind::Parallel(ParallelStep {
                        deadline,
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
                    timeout: self.duration(
                        w.timeout,
                        defaults::WAIT_LOG_TIMEOUT,
                        &kp.key("timeout"),
                    )?,
                    since: w.since.unwrap_or_default(),
                }),
            ),
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

    /// Resolves an overlay name to an existing `.dtso` directly in the overlays directory.
    fn overlay_file(&self, name: &str, path: &Path) -> R<PathBuf> {
        let known = || -> String {
            let mut v: Vec<String> = std::fs::read_dir(self.overlays_dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".dtso"))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            list(v)
        };
        let plain = !name.is_empty()
            && !name.contains('/')
            && !name.contains('\\')
            && name != "."
            && name != "..";
        if !plain || !name.ends_with(".dtso") {
            return Err(self.err(
                path,
                format!(
                    "overlay `{name}` must be a `.dtso` file name in {} (known: {})",
                    self.overlays_dir.display(),
                    known()
                ),
            ));
        }
        let file = self.overlays_dir.join(name);
        if !file.is_file() {
            return Err(self.err(
                path,
                format!("unknown overlay `{name}` (known: {})", known()),
            ));
        }
        Ok(file)
    }
}

/// Where a step sits, for what may run there. Inside `parallel`, guest-side children become
/// background jobs of the guest shell and host-side ones (QMP, removals, sleeps) run on a host
/// thread; steps that set something up and wait for the guest to agree cannot race there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Within {
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
        const SETUP: [&str; 4] = ["pci_hotplug", "memory_add", "overlay_load", "wait_log"];
        const HOST: [&str; 3] = ["qmp", "memory_remove", "pci_unplug"];
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

pub(super) fn validate(
    raw: raw::RawScenario,
    tree: &Node,
    file: &str,
    overlays_dir: &std::path::Path,
) -> R<Scenario> {
    let root = Path::root();
    let mut v = V {
        tree,
        file,
        overlays_dir,
        transport: raw.transport.unwrap_or_default(),
        requires: Vec::new(),
        boards: Vec::new(),
        ids: Ids::default(),
    };

    let name = match raw.name {
        Some(n) if n.trim().is_empty() => return Err(v.err(&root.key("name"), "empty name")),
        Some(n) => n,
        None => std::path::Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.to_string()),
    };

    let boards_path = root.key("boards");
    let boards_at = v.location(&boards_path, true);
    let boards = match raw.boards {
        None => Board::ALL.to_vec(),
        Some(list) => {
            if list.is_empty() {
                return Err(v.err(
                    &boards_path,
                    "empty list (leave `boards` out to run on every board)",
                ));
            }
            let mut out: Vec<Board> = Vec::new();
            for (i, b) in list.into_iter().enumerate() {
                if out.contains(&b.0) {
                    return Err(v.err(
                        &boards_path.index(i),
                        format!("board `{}` is listed twice", b.0),
                    ));
                }
                out.push(b.0);
            }
            out
        }
    };
    v.boards = boards.clone();

    let req_path = root.key("requires");
    let mut requires = Vec::new();
    for (i, f) in raw.requires.into_iter().enumerate() {
        let p = req_path.index(i);
        if v.requires.contains(&f) {
            return Err(v.err(&p, format!("feature `{f}` is listed twice")));
        }
        v.requires.push(f);
        requires.push(Requirement {
            feature: f,
            at: v.location(&p, false),
        });
    }

    for (i, param) in raw.cmdline.iter().enumerate() {
        if param.trim().is_empty() || param.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(v.err(
                &root.key("cmdline").index(i),
                format!("`{param}` is not one kernel parameter (one per entry, no spaces)"),
            ));
        }
    }

    let timeout = v.duration(
        raw.timeout,
        defaults::SCENARIO_TIMEOUT,
        &root.key("timeout"),
    )?;

    let mut ids = Ids::default();
    collect_ids(&raw.steps, &mut ids);
    let pci_devices = ids.pci.len();
    if pci_devices > HOTPLUG_ROOT_PORTS {
        return Err(v.err(
            &root.key("steps"),
            format!("hot-plugs {pci_devices} distinct PCI devices; boards have {HOTPLUG_ROOT_PORTS} root ports"),
        ));
    }
    let dimms = ids.dimms.len();
    if dimms > DIMM_SLOTS as usize {
        return Err(v.err(
            &root.key("steps"),
            format!("plugs {dimms} distinct DIMMs; boards have {DIMM_SLOTS} slots"),
        ));
    }
    v.ids = ids;

    let steps = v.steps(raw.steps, &root.key("steps"), Within::Top)?;

    Ok(Scenario {
        name,
        description: raw.description.unwrap_or_default(),
        file: file.to_string(),
        boards,
        boards_at,
        requires,
        cmdline: raw.cmdline,
        default_timeout: raw.timeout.is_none(),
        timeout,
        transport: v.transport,
        expect: raw.expect,
        allow: raw.allow,
        steps,
    })
}
