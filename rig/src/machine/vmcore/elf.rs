//! The ELF64 core file as rig reads and rewrites it: program headers, the RAM segments behind
//! physical addresses, and the gzipped copy with extra program headers.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// One ELF program header (`Elf64_Phdr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Phdr {
    pub(super) p_type: u32,
    pub(super) flags: u32,
    pub(super) offset: u64,
    pub(super) vaddr: u64,
    pub(super) paddr: u64,
    pub(super) filesz: u64,
    pub(super) memsz: u64,
    pub(super) align: u64,
}

pub(super) const PT_LOAD: u32 = 1;
pub(super) const PHDR_SIZE: usize = 56;

impl Phdr {
    pub(super) fn parse(b: &[u8]) -> Phdr {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
        Phdr {
            p_type: u32_at(0),
            flags: u32_at(4),
            offset: u64_at(8),
            vaddr: u64_at(16),
            paddr: u64_at(24),
            filesz: u64_at(32),
            memsz: u64_at(40),
            align: u64_at(48),
        }
    }

    pub(super) fn bytes(&self) -> [u8; PHDR_SIZE] {
        let mut b = [0u8; PHDR_SIZE];
        b[0..4].copy_from_slice(&self.p_type.to_le_bytes());
        b[4..8].copy_from_slice(&self.flags.to_le_bytes());
        for (i, v) in [
            self.offset,
            self.vaddr,
            self.paddr,
            self.filesz,
            self.memsz,
            self.align,
        ]
        .iter()
        .enumerate()
        {
            b[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// A little-endian ELF64 core's header fields rig uses.
pub(super) struct Core {
    pub(super) phoff: u64,
    pub(super) phdrs: Vec<Phdr>,
}

pub(super) fn read_core(f: &mut File) -> io::Result<Core> {
    let mut eh = [0u8; 64];
    f.read_exact(&mut eh)?;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    if &eh[0..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return Err(bad("not a little-endian ELF64 file"));
    }
    let phoff = u64::from_le_bytes(eh[32..40].try_into().unwrap_or_default());
    let phnum = u16::from_le_bytes([eh[56], eh[57]]);
    if phnum == 0xffff {
        return Err(bad("extended program header numbering"));
    }
    f.seek(SeekFrom::Start(phoff))?;
    let mut table = vec![0u8; phnum as usize * PHDR_SIZE];
    f.read_exact(&mut table)?;
    let phdrs = table.chunks(PHDR_SIZE).map(Phdr::parse).collect();
    Ok(Core { phoff, phdrs })
}

/// The physical address's bytes in the core.
pub(super) fn read_phys(f: &mut File, core: &Core, paddr: u64, buf: &mut [u8]) -> io::Result<()> {
    let seg = core
        .phdrs
        .iter()
        .find(|p| {
            p.p_type == PT_LOAD
                && paddr >= p.paddr
                && paddr + buf.len() as u64 <= p.paddr + p.filesz
        })
        .ok_or_else(|| io::Error::other(format!("{paddr:#x} is not in the core")))?;
    f.seek(SeekFrom::Start(seg.offset + (paddr - seg.paddr)))?;
    f.read_exact(buf)
}

/// The RAM segment holding `len` bytes at physical `paddr`.
pub(super) fn segment_of(core: &Core, paddr: u64, len: u64) -> Option<&Phdr> {
    core.phdrs
        .iter()
        .find(|p| p.p_type == PT_LOAD && paddr >= p.paddr && paddr + len <= p.paddr + p.filesz)
}

/// Writes `raw` gzipped to `out`, with `extra` program headers put before the core's own (gdb
/// takes the first that covers an address); every file offset moves by the headers added.
pub(super) fn write_gz(raw: &Path, extra: &[Phdr], out: &Path) -> io::Result<()> {
    let mut f = File::open(raw)?;
    let gz = flate2::write::GzEncoder::new(
        BufWriter::new(File::create(out)?),
        flate2::Compression::fast(),
    );
    let mut gz = BufWriter::with_capacity(1 << 20, gz);
    if extra.is_empty() {
        io::copy(&mut f, &mut gz)?;
    } else {
        let core = read_core(&mut f)?;
        let old_end = core.phoff + (core.phdrs.len() * PHDR_SIZE) as u64;
        let shift = (extra.len() * PHDR_SIZE) as u64;
        let mut head = vec![0u8; core.phoff as usize];
        f.seek(SeekFrom::Start(0))?;
        f.read_exact(&mut head)?;
        let phnum = (core.phdrs.len() + extra.len()) as u16;
        head[56..58].copy_from_slice(&phnum.to_le_bytes());
        // No section headers (QEMU writes one only for extended numbering, refused above).
        head[40..48].copy_from_slice(&0u64.to_le_bytes());
        head[60..64].copy_from_slice(&[0; 4]);
        gz.write_all(&head)?;
        for p in extra.iter().chain(&core.phdrs) {
            let moved = Phdr {
                offset: if p.offset >= old_end {
                    p.offset + shift
                } else {
                    p.offset
                },
                ..*p
            };
            gz.write_all(&moved.bytes())?;
        }
        f.seek(SeekFrom::Start(old_end))?;
        io::copy(&mut f, &mut gz)?;
    }
    let gz = gz.into_inner().map_err(|e| e.into_error())?;
    gz.finish()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_header_reads_back_as_written() {
        let p = Phdr {
            p_type: PT_LOAD,
            flags: 7,
            offset: 0x8b0,
            vaddr: 0xffff_0000_0000_0000,
            paddr: 0x4000_0000,
            filesz: 0x2000_0000,
            memsz: 0x2000_0000,
            align: 0,
        };
        assert_eq!(Phdr::parse(&p.bytes()), p);
    }
}
