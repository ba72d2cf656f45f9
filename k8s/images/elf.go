package images

import (
	"debug/elf"
	"encoding/binary"
)

// Layout of the executables built here: the ELF header, one program
// header, then the program, all in a single PT_LOAD segment mapped read
// and execute at loadAddr. No section headers: the kernel needs none.
const (
	elfHeaderSize  = 64 // sizeof(Elf64_Ehdr)
	progHeaderSize = 56 // sizeof(Elf64_Phdr)
	// programOffset is where the program starts in the file, and in the
	// segment: right after the two headers. It is a multiple of 8, so
	// the program's data can be aligned from it.
	programOffset = elfHeaderSize + progHeaderSize
	// loadAddr is where the file is mapped, the usual address of static
	// executables, aligned for pages of up to 64 KiB (arm64 kernels may
	// use 16 or 64 KiB pages).
	loadAddr = 0x400000
)

// staticELF returns a static ELF64 little-endian executable for machine
// whose single segment holds the headers and then program, mapped read
// and execute at loadAddr; execution starts at the program's first
// byte. align is the segment's alignment, at least the machine's
// largest page size.
func staticELF(machine elf.Machine, align uint64, program []byte) []byte {
	size := uint64(programOffset + len(program))
	b := make([]byte, 0, size)
	le := binary.LittleEndian

	// Elf64_Ehdr.
	b = append(b, elf.ELFMAG...)                   // e_ident[EI_MAG0..3]
	b = append(b, byte(elf.ELFCLASS64))            // e_ident[EI_CLASS]
	b = append(b, byte(elf.ELFDATA2LSB))           // e_ident[EI_DATA]
	b = append(b, byte(elf.EV_CURRENT))            // e_ident[EI_VERSION]
	b = append(b, byte(elf.ELFOSABI_NONE))         // e_ident[EI_OSABI]
	b = append(b, make([]byte, 8)...)              // e_ident[EI_ABIVERSION], padding
	b = le.AppendUint16(b, uint16(elf.ET_EXEC))    // e_type
	b = le.AppendUint16(b, uint16(machine))        // e_machine
	b = le.AppendUint32(b, uint32(elf.EV_CURRENT)) // e_version
	b = le.AppendUint64(b, loadAddr+programOffset) // e_entry
	b = le.AppendUint64(b, elfHeaderSize)          // e_phoff
	b = le.AppendUint64(b, 0)                      // e_shoff: no sections
	b = le.AppendUint32(b, 0)                      // e_flags
	b = le.AppendUint16(b, elfHeaderSize)          // e_ehsize
	b = le.AppendUint16(b, progHeaderSize)         // e_phentsize
	b = le.AppendUint16(b, 1)                      // e_phnum
	b = le.AppendUint16(b, 0)                      // e_shentsize
	b = le.AppendUint16(b, 0)                      // e_shnum
	b = le.AppendUint16(b, 0)                      // e_shstrndx

	// Elf64_Phdr: the whole file, read and execute.
	b = le.AppendUint32(b, uint32(elf.PT_LOAD))       // p_type
	b = le.AppendUint32(b, uint32(elf.PF_R|elf.PF_X)) // p_flags
	b = le.AppendUint64(b, 0)                         // p_offset
	b = le.AppendUint64(b, loadAddr)                  // p_vaddr
	b = le.AppendUint64(b, loadAddr)                  // p_paddr
	b = le.AppendUint64(b, size)                      // p_filesz
	b = le.AppendUint64(b, size)                      // p_memsz
	b = le.AppendUint64(b, align)                     // p_align

	return append(b, program...)
}
