//! The arm64 core's missing views ([`super::file`]): the kernel image at its link address, the
//! linear map, and each vCPU's stack (arm64 kernels always have `VMAP_STACK`), its pages found by
//! walking the kernel's page tables from `swapper_pg_dir`.

use super::elf::{read_core, read_phys, segment_of, Core, Phdr, PT_LOAD};
use crate::provision::Kernel;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The address of each of `names` in the kernel's System.map (beside its vmlinux).
fn symbols(kernel: &Kernel, names: &[&str]) -> Result<Vec<u64>, String> {
    let vmlinux = kernel.vmlinux.as_ref().ok_or("no vmlinux")?;
    let map = vmlinux.with_file_name("System.map");
    let text = std::fs::read_to_string(&map).map_err(|e| format!("{}: {e}", map.display()))?;
    names
        .iter()
        .map(|name| {
            text.lines()
                .find_map(|l| {
                    let mut w = l.split_whitespace();
                    let (addr, _, sym) = (w.next()?, w.next()?, w.next()?);
                    (sym == *name).then(|| u64::from_str_radix(addr, 16).ok())?
                })
                .ok_or_else(|| format!("{name} is not in {}", map.display()))
        })
        .collect()
}

/// The two views the arm64 core lacks: the kernel image at its link address and the linear
/// map, as program headers over the RAM segments' bytes.
pub(super) fn arm64_views(raw: &Path, kernel: &Kernel) -> Result<Vec<Phdr>, String> {
    let syms = symbols(
        kernel,
        &["_text", "_end", "memstart_addr", "swapper_pg_dir"],
    )?;
    let (text, end, memstart_sym, pgd_sym) = (syms[0], syms[1], syms[2], syms[3]);
    let va_bits: u32 = kernel
        .config_options()
        .ok()
        .and_then(|c| c.get("CONFIG_ARM64_VA_BITS").and_then(|v| v.parse().ok()))
        .ok_or("the kernel's config names no CONFIG_ARM64_VA_BITS")?;
    let mut header = [0u8; 64];
    File::open(&kernel.image)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| format!("{}: {e}", kernel.image.display()))?;
    let mut f = File::open(raw).map_err(|e| e.to_string())?;
    let core = read_core(&mut f).map_err(|e| e.to_string())?;
    let text_phys = find_page(&mut f, &core, &header)
        .map_err(|e| e.to_string())?
        .ok_or("the kernel image's header is nowhere in RAM")?;
    let mut b = [0u8; 8];
    read_phys(&mut f, &core, text_phys + (memstart_sym - text), &mut b)
        .map_err(|e| e.to_string())?;
    let memstart = u64::from_le_bytes(b);
    let page_offset = u64::MAX << va_bits;
    let mut views = Vec::new();
    for seg in core.phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        views.push(Phdr {
            vaddr: seg.paddr.wrapping_sub(memstart) | page_offset,
            ..*seg
        });
        if text_phys >= seg.paddr && text_phys < seg.paddr + seg.filesz {
            let len = (end - text).min(seg.paddr + seg.filesz - text_phys);
            views.push(Phdr {
                offset: seg.offset + (text_phys - seg.paddr),
                vaddr: text,
                paddr: text_phys,
                filesz: len,
                memsz: len,
                ..*seg
            });
        }
    }
    let tables = PageTables {
        pgd: text_phys + (pgd_sym - text),
    };
    // The walk must find the kernel image where its header is, or it is the wrong walk.
    let found = tables
        .translate(&mut f, &core, text)
        .map_err(|e| e.to_string())?;
    if found != Some(text_phys) {
        return Err(format!(
            "the page-table walk puts _text at {found:x?}, not {text_phys:#x}"
        ));
    }
    for sp in stack_pointers(&mut f, &core).map_err(|e| e.to_string())? {
        let base = sp & !(THREAD_SIZE - 1);
        for page in (base..base + THREAD_SIZE).step_by(PAGE as usize) {
            let Ok(Some(phys)) = tables.translate(&mut f, &core, page) else {
                continue;
            };
            if let Some(seg) = segment_of(&core, phys, PAGE) {
                views.push(Phdr {
                    offset: seg.offset + (phys - seg.paddr),
                    vaddr: page,
                    paddr: phys,
                    filesz: PAGE,
                    memsz: PAGE,
                    ..*seg
                });
            }
        }
    }
    Ok(views)
}

const PAGE: u64 = 4096;
/// arm64's THREAD_SIZE with 4 KiB pages: a task's stack.
const THREAD_SIZE: u64 = 16 * 1024;

/// Each vCPU's stack pointer, from the core's `NT_PRSTATUS` notes (arm64's `user_pt_regs`:
/// x0..x30, then sp).
fn stack_pointers(f: &mut File, core: &Core) -> io::Result<Vec<u64>> {
    const NT_PRSTATUS: u32 = 1;
    /// `pr_reg`'s offset in a 64-bit `elf_prstatus`, and sp's in `pr_reg`.
    const SP_AT: usize = 112 + 31 * 8;
    let mut sps = Vec::new();
    for note in core.phdrs.iter().filter(|p| p.p_type == 4) {
        let mut b = vec![0u8; note.filesz.min(1 << 20) as usize];
        f.seek(SeekFrom::Start(note.offset))?;
        f.read_exact(&mut b)?;
        let mut at = 0usize;
        let word = |b: &[u8], o: usize| {
            b.get(o..o + 4)
                .map(|w| u32::from_le_bytes(w.try_into().unwrap_or_default()))
        };
        while let (Some(namesz), Some(descsz), Some(ty)) =
            (word(&b, at), word(&b, at + 4), word(&b, at + 8))
        {
            let desc = at + 12 + (namesz as usize).next_multiple_of(4);
            if ty == NT_PRSTATUS {
                if let Some(sp) = b.get(desc + SP_AT..desc + SP_AT + 8) {
                    sps.push(u64::from_le_bytes(sp.try_into().unwrap_or_default()));
                }
            }
            at = desc + (descsz as usize).next_multiple_of(4);
        }
    }
    Ok(sps)
}

/// The kernel's page tables (TTBR1: 4 KiB granule, 48-bit virtual addresses, four levels; a
/// kernel built for 52 bits runs this way on a CPU without LPA2, such as QEMU's cortex-a57).
struct PageTables {
    pgd: u64,
}

impl PageTables {
    /// The physical address `va` maps to, if it is mapped.
    fn translate(&self, f: &mut File, core: &Core, va: u64) -> io::Result<Option<u64>> {
        const ADDR: u64 = 0x0000_ffff_ffff_f000;
        let mut table = self.pgd;
        for level in 0..4u32 {
            let shift = 39 - 9 * level;
            let index = (va >> shift) & 0x1ff;
            let mut b = [0u8; 8];
            if segment_of(core, table + index * 8, 8).is_none() {
                return Ok(None);
            }
            read_phys(f, core, table + index * 8, &mut b)?;
            let entry = u64::from_le_bytes(b);
            let (valid, table_or_page) = (entry & 1 == 1, entry & 2 == 2);
            if !valid {
                return Ok(None);
            }
            let out = entry & ADDR;
            if level == 3 {
                return Ok(table_or_page.then_some(out | (va & (PAGE - 1))));
            }
            if !table_or_page {
                // A block: 1 GiB at level 1, 2 MiB at level 2.
                if level == 0 {
                    return Ok(None);
                }
                let mask = (1u64 << shift) - 1;
                return Ok(Some((out & !mask) | (va & mask)));
            }
            table = out;
        }
        Ok(None)
    }
}

/// The first page-aligned physical address whose first bytes are `header`.
fn find_page(f: &mut File, core: &Core, header: &[u8]) -> io::Result<Option<u64>> {
    const PAGE: usize = 4096;
    let mut chunk = vec![0u8; 1 << 20];
    for seg in core.phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        f.seek(SeekFrom::Start(seg.offset))?;
        let mut at = 0u64;
        while at < seg.filesz {
            let n = chunk.len().min((seg.filesz - at) as usize);
            f.read_exact(&mut chunk[..n])?;
            for page in (0..n).step_by(PAGE) {
                if chunk[page..].starts_with(header) {
                    return Ok(Some(seg.paddr + at + page as u64));
                }
            }
            at += n as u64;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::super::elf::{write_gz, PHDR_SIZE};
    use super::*;
    use std::path::PathBuf;

    /// A fake core whose RAM (1 MiB at 0x4000_0000) holds four levels of page tables mapping
    /// one page and one 2 MiB block, and a note with one vCPU's registers.
    fn tables_core(dir: &Path, sp: u64) -> PathBuf {
        let ram_base = 0x4000_0000u64;
        let mut ram = vec![0u8; 0x10_0000];
        let mut put = |phys: u64, v: u64| {
            let o = (phys - ram_base) as usize;
            ram[o..o + 8].copy_from_slice(&v.to_le_bytes());
        };
        let va = 0xffff_8000_8160_3000u64;
        let idx = |va: u64, level: u32| (va >> (39 - 9 * level)) & 0x1ff;
        let (l0, l1, l2, l3) = (
            ram_base,
            ram_base + 0x1000,
            ram_base + 0x2000,
            ram_base + 0x3000,
        );
        put(l0 + idx(va, 0) * 8, l1 | 3);
        put(l1 + idx(va, 1) * 8, l2 | 3);
        put(l2 + idx(va, 2) * 8, l3 | 3);
        put(l3 + idx(va, 3) * 8, (ram_base + 0x5000) | 3);
        // A 2 MiB block for the next 2 MiB of virtual addresses.
        put(l2 + (idx(va, 2) + 1) * 8, 0x8020_0000 | 1);
        let mut note = Vec::new();
        note.extend(5u32.to_le_bytes());
        note.extend(392u32.to_le_bytes());
        note.extend(1u32.to_le_bytes());
        note.extend(b"CORE\0\0\0\0");
        let mut desc = vec![0u8; 392];
        desc[112 + 31 * 8..112 + 32 * 8].copy_from_slice(&sp.to_le_bytes());
        note.extend(desc);
        let data = 64 + 2 * PHDR_SIZE as u64;
        let mut eh = [0u8; 64];
        eh[0..6].copy_from_slice(b"\x7fELF\x02\x01");
        eh[32..40].copy_from_slice(&64u64.to_le_bytes());
        eh[56..58].copy_from_slice(&2u16.to_le_bytes());
        let notes = Phdr {
            p_type: 4,
            flags: 0,
            offset: data,
            vaddr: 0,
            paddr: 0,
            filesz: note.len() as u64,
            memsz: note.len() as u64,
            align: 0,
        };
        let load = Phdr {
            p_type: PT_LOAD,
            offset: data + note.len() as u64,
            vaddr: ram_base,
            paddr: ram_base,
            filesz: ram.len() as u64,
            memsz: ram.len() as u64,
            ..notes
        };
        let mut file = eh.to_vec();
        file.extend(notes.bytes());
        file.extend(load.bytes());
        file.extend(note);
        file.extend(ram);
        let p = dir.join("core");
        std::fs::write(&p, file).unwrap();
        p
    }

    /// The walk finds a page, a block and nothing where nothing is mapped; the vCPU's stack
    /// pointer comes from its note.
    #[test]
    fn the_page_table_walk_and_the_stack_pointer_notes() {
        let dir = tempfile::tempdir().unwrap();
        let sp = 0xffff_8000_8160_3e20u64;
        let path = tables_core(dir.path(), sp);
        let mut f = File::open(&path).unwrap();
        let core = read_core(&mut f).unwrap();
        let t = PageTables { pgd: 0x4000_0000 };
        let page = 0xffff_8000_8160_3000u64;
        assert_eq!(
            t.translate(&mut f, &core, page + 0x123).unwrap(),
            Some(0x4000_5123)
        );
        let block = 0xffff_8000_8180_0000u64;
        assert_eq!(
            t.translate(&mut f, &core, block + 0x1234).unwrap(),
            Some(0x8020_1234)
        );
        assert_eq!(t.translate(&mut f, &core, page + 0x1000).unwrap(), None);
        assert_eq!(
            t.translate(&mut f, &core, 0xffff_0000_0000_0000).unwrap(),
            None
        );
        assert_eq!(stack_pointers(&mut f, &core).unwrap(), vec![sp]);
    }

    /// A fake arm64 core (one RAM segment at 0x4000_0000 holding an "image" at +0x20_0000) gets
    /// the linear map and image views, its offsets shifted, and its bytes unchanged.
    #[test]
    fn the_arm64_views_point_at_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("vmcore.elf");
        let ram_len = 0x40_0000u64;
        let data_off = 64 + PHDR_SIZE as u64;
        let mut eh = [0u8; 64];
        eh[0..6].copy_from_slice(b"\x7fELF\x02\x01");
        eh[32..40].copy_from_slice(&64u64.to_le_bytes());
        eh[56..58].copy_from_slice(&1u16.to_le_bytes());
        let seg = Phdr {
            p_type: PT_LOAD,
            flags: 0,
            offset: data_off,
            vaddr: 0x4000_0000,
            paddr: 0x4000_0000,
            filesz: ram_len,
            memsz: ram_len,
            align: 0,
        };
        let mut ram = vec![0u8; ram_len as usize];
        ram[0x20_0000..0x20_0004].copy_from_slice(b"HDR!");
        let mut file = eh.to_vec();
        file.extend(seg.bytes());
        file.extend(&ram);
        std::fs::write(&raw, &file).unwrap();
        let mut f = File::open(&raw).unwrap();
        let core = read_core(&mut f).unwrap();
        assert_eq!(core.phdrs, vec![seg]);
        assert_eq!(
            find_page(&mut f, &core, b"HDR!").unwrap(),
            Some(0x4020_0000)
        );
        let view = Phdr {
            vaddr: 0xffff_0000_0000_0000,
            ..seg
        };
        let out = dir.path().join("out.gz");
        write_gz(&raw, &[view], &out).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(File::open(&out).unwrap())
            .read_to_end(&mut back)
            .unwrap();
        let mut bf = File::create(dir.path().join("back")).unwrap();
        std::io::Write::write_all(&mut bf, &back).unwrap();
        let mut bf = File::open(dir.path().join("back")).unwrap();
        let core = read_core(&mut bf).unwrap();
        assert_eq!(core.phdrs.len(), 2);
        assert_eq!(core.phdrs[0].vaddr, 0xffff_0000_0000_0000);
        for p in &core.phdrs {
            assert_eq!(p.offset, data_off + PHDR_SIZE as u64);
        }
        let mut hdr = [0u8; 4];
        read_phys(&mut bf, &core, 0x4020_0000, &mut hdr).unwrap();
        assert_eq!(&hdr, b"HDR!");
    }
}
