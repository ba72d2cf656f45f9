package images

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// PauseName is the name of hepto's pause image: a rebuild of Kubernetes'
// sandbox image under the upstream name and tag (that of the embedded
// Kubernetes release, which its end-to-end suite runs too), so that
// containerd finds its configured sandbox image already in its store and
// never pulls it.
const PauseName = "registry.k8s.io/pause:3.10.2"

// PauseImage is the sandbox image for arch: /pause alone, the program
// PauseELF makes, run as user and group 65535 like the upstream image.
// arch must be one PauseELF knows (amd64 or arm64); PauseImage panics
// otherwise, so check with PauseELF first where arch is not a given.
func PauseImage(arch string) Image {
	pause, err := PauseELF(arch)
	if err != nil {
		panic(err)
	}
	return Image{
		Name:       PauseName,
		Arch:       arch,
		Entrypoint: []string{"/pause"},
		User:       "65535:65535",
		Files:      []File{{Path: "/pause", Mode: 0o755, Data: pause}},
	}
}

// PauseELF returns the pause program for arch ("amd64" or "arm64"): a
// static executable of a few hundred bytes, without a Go runtime or libc,
// that does what Kubernetes' pause.c does, with sigwait instead of
// handlers:
//
//	rt_sigaction(SIGCHLD, {SIG_IGN}, NULL, 8)  // the kernel reaps zombies
//	rt_sigprocmask(SIG_BLOCK, {SIGINT, SIGTERM}, NULL, 8)
//	while (rt_sigtimedwait({SIGINT, SIGTERM}, NULL, NULL, 8) <= 0)
//		;
//	exit_group(0)
//
// As the first process of a pid namespace, pause gets no signal it has
// no handler for (other than SIGKILL from an ancestor namespace): the
// kernel drops them. A blocked signal is queued instead, which is why
// SIGINT and SIGTERM are blocked and waited for. With SIGCHLD ignored,
// children and orphans that pause inherits as the namespace's init are
// reaped by the kernel when they exit. The wait is redone when it is
// interrupted (-EINTR, such as after SIGSTOP and SIGCONT).
func PauseELF(arch string) ([]byte, error) {
	switch arch {
	case "amd64":
		return staticELF(elf.EM_X86_64, 0x1000, pauseProgram(pauseAMD64, pauseAMD64Data)), nil
	case "arm64":
		code := make([]byte, 0, 4*len(pauseARM64))
		for _, ins := range pauseARM64 {
			code = binary.LittleEndian.AppendUint32(code, ins)
		}
		return staticELF(elf.EM_AARCH64, 0x10000, pauseProgram(code, pauseARM64Data)), nil
	}
	return nil, fmt.Errorf("no pause program for architecture %q (only amd64 and arm64)", arch)
}

// Values the pause program passes to the kernel, the same on amd64 and
// arm64.
const (
	sigINT    = 2
	sigTERM   = 15
	sigCHLD   = 17
	sigBlock  = 0 // rt_sigprocmask's how
	sigIgn    = 1 // SIG_IGN, as a handler
	sigSetLen = 8 // the kernel's sigset_t: 64 bits, signal n is bit n-1
	// pauseSet is the set pause blocks and waits for: SIGINT and SIGTERM.
	pauseSet = 1<<(sigINT-1) | 1<<(sigTERM-1)
)

// pauseData is the data the program points the kernel at, placed after
// the code at an offset that is a multiple of 8 in the file:
//
//	act: the kernel's struct sigaction, 32 bytes on amd64 and arm64:
//	     sa_handler = SIG_IGN, sa_flags = 0, sa_restorer = 0, sa_mask = 0.
//	     SA_RESTORER, which amd64 wants for handlers, is of no use for
//	     SIG_IGN: the kernel never runs a handler.
//	set: sigset_t {SIGINT, SIGTERM}, 8 bytes.
func pauseData() []byte {
	le := binary.LittleEndian
	d := le.AppendUint64(nil, sigIgn) // act.sa_handler
	d = le.AppendUint64(d, 0)         // act.sa_flags
	d = le.AppendUint64(d, 0)         // act.sa_restorer
	d = le.AppendUint64(d, 0)         // act.sa_mask
	return le.AppendUint64(d, pauseSet)
}

// Offsets of act and set in pauseData.
const (
	actOffset = 0
	setOffset = 32
)

// pauseProgram is code, zeros up to dataAt (an offset in the program),
// and pauseData there. The code's PC-relative references to act and set
// are computed for that dataAt.
func pauseProgram(code []byte, dataAt int) []byte {
	if len(code) > dataAt || (programOffset+dataAt)%8 != 0 {
		panic("pause: data overlaps the code or is not aligned")
	}
	p := make([]byte, dataAt, dataAt+len(pauseData()))
	copy(p, code)
	return append(p, pauseData()...)
}

// pauseAMD64 is the amd64 program. Arguments go in rdi, rsi, rdx, r10,
// the syscall number in rax; syscall clobbers rcx and r11 and returns in
// rax. Offsets are from the program's start; lea's displacements are
// from the end of the lea, to act at 88 and set at 120.
var pauseAMD64 = []byte{
	// rt_sigaction(SIGCHLD, &act, NULL, 8)
	0xb8, 0x0d, 0x00, 0x00, 0x00, //  0: mov  eax, 13 (rt_sigaction)
	0xbf, 0x11, 0x00, 0x00, 0x00, //  5: mov  edi, 17 (SIGCHLD)
	0x48, 0x8d, 0x35, 0x47, 0x00, 0x00, 0x00, // 10: lea  rsi, [rip+71] (act: 17+71 = 88)
	0x31, 0xd2, // 17: xor  edx, edx (no old action)
	0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // 19: mov  r10d, 8 (sigsetsize)
	0x0f, 0x05, // 25: syscall

	// rt_sigprocmask(SIG_BLOCK, &set, NULL, 8)
	0xb8, 0x0e, 0x00, 0x00, 0x00, // 27: mov  eax, 14 (rt_sigprocmask)
	0x31, 0xff, // 32: xor  edi, edi (SIG_BLOCK)
	0x48, 0x8d, 0x35, 0x4f, 0x00, 0x00, 0x00, // 34: lea  rsi, [rip+79] (set: 41+79 = 120)
	0x31, 0xd2, // 41: xor  edx, edx (no old set)
	0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // 43: mov  r10d, 8 (sigsetsize)
	0x0f, 0x05, // 49: syscall

	// wait: rt_sigtimedwait(&set, NULL, NULL, 8)
	0xb8, 0x80, 0x00, 0x00, 0x00, // 51: mov  eax, 128 (rt_sigtimedwait)
	0x48, 0x8d, 0x3d, 0x39, 0x00, 0x00, 0x00, // 56: lea  rdi, [rip+57] (set: 63+57 = 120)
	0x31, 0xf6, // 63: xor  esi, esi (no siginfo)
	0x31, 0xd2, // 65: xor  edx, edx (no timeout)
	0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // 67: mov  r10d, 8 (sigsetsize)
	0x0f, 0x05, // 73: syscall
	0x85, 0xc0, // 75: test eax, eax (a signal number, or -errno)
	0x7e, 0xe4, // 77: jle  wait (79-28 = 51)

	// exit_group(0)
	0xb8, 0xe7, 0x00, 0x00, 0x00, // 79: mov  eax, 231 (exit_group)
	0x31, 0xff, // 84: xor  edi, edi (status 0)
	0x0f, 0x05, // 86: syscall
}

// pauseAMD64Data is where act and set start in the amd64 program.
const pauseAMD64Data = 88

// pauseARM64 is the arm64 program, one instruction per word. Arguments
// go in x0 to x3, the syscall number in x8; svc returns in x0. Offsets
// are from the program's start; adr's offsets are from the adr itself,
// to act at 96 and set at 128.
var pauseARM64 = []uint32{
	// rt_sigaction(SIGCHLD, &act, NULL, 8)
	0xd28010c8, //  0: mov  x8, #134 (rt_sigaction)
	0xd2800220, //  4: mov  x0, #17 (SIGCHLD)
	0x100002c1, //  8: adr  x1, act (8+88 = 96)
	0xd2800002, // 12: mov  x2, #0 (no old action)
	0xd2800103, // 16: mov  x3, #8 (sigsetsize)
	0xd4000001, // 20: svc  #0

	// rt_sigprocmask(SIG_BLOCK, &set, NULL, 8)
	0xd28010e8, // 24: mov  x8, #135 (rt_sigprocmask)
	0xd2800000, // 28: mov  x0, #0 (SIG_BLOCK)
	0x10000301, // 32: adr  x1, set (32+96 = 128)
	0xd2800002, // 36: mov  x2, #0 (no old set)
	0xd2800103, // 40: mov  x3, #8 (sigsetsize)
	0xd4000001, // 44: svc  #0

	// wait: rt_sigtimedwait(&set, NULL, NULL, 8)
	0xd2801128, // 48: mov  x8, #137 (rt_sigtimedwait)
	0x10000260, // 52: adr  x0, set (52+76 = 128)
	0xd2800001, // 56: mov  x1, #0 (no siginfo)
	0xd2800002, // 60: mov  x2, #0 (no timeout)
	0xd2800103, // 64: mov  x3, #8 (sigsetsize)
	0xd4000001, // 68: svc  #0
	0xf100001f, // 72: cmp  x0, #0 (a signal number, or -errno)
	0x54ffff2d, // 76: b.le wait (76-28 = 48)

	// exit_group(0)
	0xd2800bc8, // 80: mov  x8, #94 (exit_group)
	0xd2800000, // 84: mov  x0, #0 (status 0)
	0xd4000001, // 88: svc  #0
}

// pauseARM64Data is where act and set start in the arm64 program, after
// 4 bytes of padding.
const pauseARM64Data = 96
