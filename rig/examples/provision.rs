//! Provisions `debian-6.1` and its initramfs for the arches given (default: both) and prints
//! where they are. `cargo run --example provision -- arm64 x86_64 [+MODULE...]`: a `+name`
//! argument also packs that module (and its dependencies) for `rig.modules=name`.
use rig::host::board::Arch;
use rig::host::cache::Cache;
use rig::host::events::{Events, StderrProgress};
use std::sync::Arc;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let (extra, arches): (Vec<String>, Vec<String>) =
        std::env::args().skip(1).partition(|a| a.starts_with('+'));
    let extra: Vec<String> = extra.iter().map(|m| m[1..].to_string()).collect();
    let arches: Vec<Arch> = arches.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
    let arches = if arches.is_empty() {
        vec![Arch::X86_64, Arch::Arm64]
    } else {
        arches
    };
    let cache = Cache::from_env();
    let events = Events::none().with(Arc::new(StderrProgress::new(true)));
    for arch in arches {
        let t = Instant::now();
        let kernel = rig::provision::resolve_kernel("debian-6.1", arch, &cache, &events)?;
        let initrd =
            rig::provision::image::initramfs::for_kernel_with(&kernel, &extra, &cache, &events)?;
        println!("{arch}: resolved in {:.3}s", t.elapsed().as_secs_f64());
        println!("  kernel  {}", kernel.image.display());
        println!("  initrd  {}", initrd.display());
        println!("  modules {}", kernel.modules_root.display());
        println!("  config  {}", kernel.config.display());
        for (k, v) in &kernel.provenance {
            println!("  {k}: {v}");
        }
    }
    Ok(())
}
