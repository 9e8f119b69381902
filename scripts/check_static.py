"""Exit 0 when the ELF file given is statically linked: no program interpreter and no
shared library needed (a static-pie keeps a dynamic section for its own relocations)."""
import struct
import sys

PT_DYNAMIC, PT_INTERP, DT_NULL, DT_NEEDED = 2, 3, 0, 1

path = sys.argv[1]
with open(path, "rb") as f:
    elf = f.read()
if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
    sys.exit(f"{path}: not a 64-bit little-endian ELF file")
phoff, = struct.unpack_from("<Q", elf, 0x20)
phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
headers = [phoff + i * phentsize for i in range(phnum)]
types = [struct.unpack_from("<I", elf, h)[0] for h in headers]
if PT_INTERP in types:
    sys.exit(f"{path}: has a program interpreter: it is not static")
for h, t in zip(headers, types):
    if t != PT_DYNAMIC:
        continue
    offset, = struct.unpack_from("<Q", elf, h + 8)
    size, = struct.unpack_from("<Q", elf, h + 32)
    for entry in range(offset, offset + size, 16):
        tag, = struct.unpack_from("<q", elf, entry)
        if tag == DT_NEEDED:
            sys.exit(f"{path}: needs a shared library: it is not static")
        if tag == DT_NULL:
            break
print(f"{path}: static, {len(elf) / 1048576:.1f} MiB")
