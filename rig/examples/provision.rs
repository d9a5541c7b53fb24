//! Provisions `debian-6.1` and its initramfs for the arches given (default: both) and prints
//! where they are. `cargo run --example provision -- arm64 x86_64`
use rig::board::Arch;
use rig::cache::Cache;
use rig::events::{Events, StderrProgress};
use std::sync::Arc;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let arches: Vec<Arch> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let arches = if arches.is_empty() {
        vec![Arch::X86_64, Arch::Arm64]
    } else {
        arches
    };
    let cache = Cache::from_env();
    let events = Events::none().with(Arc::new(StderrProgress { verbose: true }));
    for arch in arches {
        let t = Instant::now();
        let img = rig::image::boot_image("debian-6.1", arch, &cache, &events)?;
        println!("{arch}: resolved in {:.3}s", t.elapsed().as_secs_f64());
        println!("  kernel  {}", img.kernel.image.display());
        println!("  initrd  {}", img.initrd.display());
        println!("  modules {}", img.kernel.modules_root.display());
        println!("  config  {}", img.kernel.config.display());
        for (k, v) in &img.kernel.provenance {
            println!("  {k}: {v}");
        }
    }
    Ok(())
}
