//! What runs before a boot, in order: the host tools the kernel needs (installed with apt when
//! allowed), the kernel and initramfs provisioned ([`provision()`]), the accelerator chosen
//! ([`choose_accel`]). Callers run these first and hand the [`PreparedMachine`] to
//! [`crate::guest::Guest::boot`], which only boots; [`prepare`] is all of it at once. The scenario
//! engine runs the phases one by one, with its requirement checks between them
//! (`run::run_scenario`).

use crate::host::board::Board;
use crate::host::cache::Cache;
use crate::host::doctor::{self, Need, SetupError};
use crate::host::events::{Event, Events};
use crate::machine::accel;
use crate::machine::spec::{MachineSpec, PreparedMachine};
use crate::provision::{self, BootImage, ProvisionError};

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("host tools missing: {missing}")]
    MissingTools {
        missing: String,
        #[source]
        source: SetupError,
    },
    #[error("cannot provision kernel `{kernel}` for {board}")]
    Image {
        kernel: String,
        board: Board,
        #[source]
        source: Box<ProvisionError>,
    },
}

/// Makes sure the host tools for `needs` are there, installing them with apt when allowed.
pub fn ensure_host_tools(
    needs: &[Need],
    auto_setup: bool,
    cache: &Cache,
    events: &Events,
) -> Result<(), PrepareError> {
    let statuses = doctor::check_all();
    let missing = doctor::missing_packages(&statuses, needs);
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !auto_setup {
        return Err(PrepareError::MissingTools {
            missing: list.clone(),
            source: SetupError::NotRoot(missing),
        });
    }
    events.emit(Event::StepStarted {
        step: "setup".into(),
        detail: format!("installing missing host packages: {list}"),
    });
    let start = std::time::Instant::now();
    let replaced = doctor::install(&missing, &setup_log(cache)).map_err(|source| {
        PrepareError::MissingTools {
            missing: list,
            source,
        }
    })?;
    for r in &replaced {
        events.emit(Event::Warning {
            message: r.to_string(),
        });
    }
    events.emit(Event::StepFinished {
        step: "setup".into(),
        elapsed: start.elapsed(),
        cached: false,
    });
    Ok(())
}

/// Where apt's transcript goes: a fresh file under the cache's `logs/`.
pub fn setup_log(cache: &Cache) -> std::path::PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    cache.root().join("logs").join(format!("setup-{stamp}.log"))
}

/// Host tool needs for booting `kernel`.
pub fn needs_for_kernel(kernel: &str) -> Vec<Need> {
    if provision::KernelSpec::parse(kernel).is_ok_and(|k| k.is_built()) {
        vec![Need::Core, Need::Kbuild]
    } else {
        vec![Need::Core]
    }
}

/// The spec's kernel and initramfs, fetched or built: its name checked first (a typo is bad
/// input before any host tool is installed), then the host tools it needs, then the files.
pub fn provision(
    spec: &MachineSpec,
    auto_setup: bool,
    cache: &Cache,
    events: &Events,
) -> Result<BootImage, PrepareError> {
    let image_error = |source| PrepareError::Image {
        kernel: spec.kernel.clone(),
        board: spec.board,
        source: Box::new(source),
    };
    provision::check_kernel_name(&spec.kernel).map_err(image_error)?;
    provision::check_project_kernel(&spec.kernel).map_err(image_error)?;
    ensure_host_tools(&needs_for_kernel(&spec.kernel), auto_setup, cache, events)?;
    provision::boot_image(&spec.kernel, spec.board.arch(), cache, events).map_err(image_error)
}

/// The accelerator for the provisioned spec ([`accel::choose`]: `auto` probes KVM with a real
/// boot of `image`, once per host).
pub fn choose_accel(
    spec: MachineSpec,
    image: BootImage,
    cache: &Cache,
    events: &Events,
) -> PreparedMachine {
    let accel = accel::choose(spec.accel, spec.board, &image, cache, events);
    PreparedMachine { spec, image, accel }
}

/// Every phase before the boot: [`provision()`], then [`choose_accel`].
pub fn prepare(
    spec: MachineSpec,
    auto_setup: bool,
    cache: &Cache,
    events: &Events,
) -> Result<PreparedMachine, PrepareError> {
    let image = provision(&spec, auto_setup, cache, events)?;
    Ok(choose_accel(spec, image, cache, events))
}
