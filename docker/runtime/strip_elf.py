"""Drop debug info and the static symbol table from an ELF64 shared library, as `strip --strip-unneeded` would.

Usage: strip_elf.py LIBRARY... — for images with no binutils (Dockerfile.runtime builds offline).
Only the simple layout is handled: every section to drop is non-allocated and comes after every
section the loader uses. Anything else is left untouched, with a message; nothing loaded changes.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

SHF_ALLOC = 0x2
SHT_NOBITS = 8
HEADER = struct.Struct("<16sHHIQQQIHHHHHH")     # Elf64_Ehdr
SECTION = struct.Struct("<IIQQQQIIQQ")          # Elf64_Shdr: name type flags addr offset size link info align entsize
SEGMENT = struct.Struct("<IIQQQQQQ")            # Elf64_Phdr: type flags offset vaddr paddr filesz memsz align


def droppable(name: bytes, flags: int) -> bool:
    return not flags & SHF_ALLOC and (name.startswith(b".debug_") or name in (b".symtab", b".strtab"))


def strip(path: Path) -> str:
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return "not a little-endian ELF64 file: left as is"
    header = list(HEADER.unpack_from(data))
    shoff, shentsize, shnum, shstrndx = header[6], header[11], header[12], header[13]
    if shentsize != SECTION.size or shoff == 0:
        return "unexpected section header table: left as is"
    sections = [list(SECTION.unpack_from(data, shoff + i * SECTION.size)) for i in range(shnum)]
    names = sections[shstrndx]

    def name(section: list[int]) -> bytes:
        start = names[4] + section[0]
        return data[start:data.index(b"\0", start)]

    drop = {i for i, s in enumerate(sections) if i and droppable(name(s), s[2])}
    if not drop:
        return "nothing to strip"
    kept = [i for i in range(shnum) if i not in drop]
    if min(drop) <= max(i for i in kept if sections[i][2] & SHF_ALLOC) or shstrndx in drop:
        return "sections to drop sit among loaded ones: left as is"
    if any(sections[i][6] in drop or (sections[i][7] in drop and sections[i][1] in (4, 9)) for i in kept):
        return "a kept section refers to a dropped one: left as is"
    index = {old: new for new, old in enumerate(kept)}
    # Everything up to the first dropped section stays byte for byte; kept non-alloc sections follow.
    cut = min(sections[i][4] for i in drop)
    if any(sections[i][4] + (0 if sections[i][1] == SHT_NOBITS else sections[i][5]) > cut
           for i in kept if sections[i][4] < cut):
        return "sections overlap the part to drop: left as is"
    for i in range(header[10]):
        segment = SEGMENT.unpack_from(data, header[5] + i * header[9])
        if segment[2] + segment[5] > cut:
            return "a segment reaches into the part to drop: left as is"
    out = bytearray(data[:cut])
    table = []
    for old in kept:
        section = sections[old][:]
        if section[4] >= cut and section[1] != SHT_NOBITS:
            align = max(section[8], 1)
            out += b"\0" * (-len(out) % align)
            out += data[section[4]:section[4] + section[5]]
            section[4] = len(out) - section[5]
        section[6] = index.get(section[6], section[6])
        table.append(section)
    out += b"\0" * (-len(out) % 8)
    header[6], header[12], header[13] = len(out), len(kept), index[shstrndx]
    for section in table:
        out += SECTION.pack(*section)
    out[:HEADER.size] = HEADER.pack(*header)
    temporary = path.with_name(path.name + ".strip")
    temporary.write_bytes(out)
    temporary.chmod(path.stat().st_mode)
    temporary.replace(path)
    return f"{len(data) / 1e6:.1f} MB -> {len(out) / 1e6:.1f} MB"


def main(paths: list[str]) -> int:
    for path in paths:
        print(f"strip_elf: {path}: {strip(Path(path))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
