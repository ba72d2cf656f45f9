package images

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pauseSyscalls are the syscall numbers the program must use, in order:
// rt_sigaction, rt_sigprocmask, rt_sigtimedwait, exit_group
// (golang.org/x/sys/unix zsysnum_linux_*.go).
var pauseSyscalls = map[string][]uint64{
	"amd64": {13, 14, 128, 231},
	"arm64": {134, 135, 137, 94},
}

// pauseCode decodes what the tests check of a pause program: the syscall
// numbers it loads, in order, the addresses its PC-relative references
// point at, and where its conditional branch goes and the instruction
// there.
type pauseCode struct {
	syscalls    []uint64
	refs        []uint64 // addresses, from the segment's start
	branchTo    uint64
	branchToIns []byte
}

func decodeAMD64(code []byte, at uint64) (c pauseCode) {
	for i := 0; i < len(code); {
		switch {
		case code[i] == 0xb8: // mov eax, imm32
			c.syscalls = append(c.syscalls, uint64(binary.LittleEndian.Uint32(code[i+1:])))
			i += 5
		case code[i] == 0x48 && code[i+1] == 0x8d && (code[i+2] == 0x35 || code[i+2] == 0x3d): // lea r, [rip+disp32]
			next := at + uint64(i) + 7
			c.refs = append(c.refs, next+uint64(int64(int32(binary.LittleEndian.Uint32(code[i+3:])))))
			i += 7
		case code[i] == 0x7e: // jle rel8
			to := int(i) + 2 + int(int8(code[i+1]))
			c.branchTo, c.branchToIns = at+uint64(to), code[to:to+5]
			i += 2
		default:
			i++
		}
	}
	return c
}

func decodeARM64(code []byte, at uint64) (c pauseCode) {
	for i := 0; i+4 <= len(code); i += 4 {
		ins := binary.LittleEndian.Uint32(code[i:])
		pc := at + uint64(i)
		switch {
		case ins&0xffe0001f == 0xd2800008: // movz x8, #imm16
			c.syscalls = append(c.syscalls, uint64(ins>>5&0xffff))
		case ins&0x9f000000 == 0x10000000: // adr xd, #imm21
			imm := int64(ins>>5&0x7ffff)<<2 | int64(ins>>29&3)
			imm = imm << 43 >> 43 // sign-extend 21 bits
			c.refs = append(c.refs, pc+uint64(imm))
		case ins&0xff000010 == 0x54000000: // b.cond #imm19
			imm := int64(ins>>5&0x7ffff) << 45 >> 43 // sign-extend, times 4
			to := int(int64(i) + imm)
			c.branchTo, c.branchToIns = pc+uint64(imm), code[to:to+4]
		}
	}
	return c
}

func TestPauseELF(t *testing.T) {
	for _, tc := range []struct {
		arch     string
		machine  elf.Machine
		decode   func([]byte, uint64) pauseCode
		dataAt   int
		loopHead []byte // the first instruction of the wait loop
	}{
		{"amd64", elf.EM_X86_64, decodeAMD64, pauseAMD64Data, []byte{0xb8, 0x80, 0, 0, 0}},
		{"arm64", elf.EM_AARCH64, decodeARM64, pauseARM64Data, []byte{0x28, 0x11, 0x80, 0xd2}},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			b, err := PauseELF(tc.arch)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s pause: %d bytes", tc.arch, len(b))
			f, err := elf.NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Type != elf.ET_EXEC || f.Machine != tc.machine {
				t.Errorf("ELF %v %v %v %v, want a 64-bit little-endian executable for %v", f.Class, f.Data, f.Type, f.Machine, tc.machine)
			}
			if len(f.Progs) != 1 {
				t.Fatalf("%d program headers, want 1", len(f.Progs))
			}
			p := f.Progs[0]
			if p.Type != elf.PT_LOAD || p.Flags != elf.PF_R|elf.PF_X || p.Off != 0 || p.Filesz != uint64(len(b)) || p.Memsz != p.Filesz || p.Vaddr%p.Align != 0 {
				t.Errorf("segment %+v, want the whole file, read and execute, aligned", p.ProgHeader)
			}
			if f.Entry < p.Vaddr || f.Entry >= p.Vaddr+p.Filesz {
				t.Fatalf("entry %#x outside the segment at %#x", f.Entry, p.Vaddr)
			}

			start := f.Entry - p.Vaddr
			data := uint64(programOffset + tc.dataAt)
			if data%8 != 0 || uint64(len(b)) != data+40 {
				t.Errorf("data at %d of %d bytes, want the last 40, aligned", data, len(b))
			}
			c := tc.decode(b[start:data], start)
			if want := pauseSyscalls[tc.arch]; !slices.Equal(c.syscalls, want) {
				t.Errorf("syscalls %v, want %v", c.syscalls, want)
			}
			act, set := data+actOffset, data+setOffset
			if want := []uint64{act, set, set}; !slices.Equal(c.refs, want) {
				t.Errorf("references to %v, want act, set, set at %v", c.refs, want)
			}
			le := binary.LittleEndian
			if le.Uint64(b[act:]) != sigIgn || !bytes.Equal(b[act+8:act+32], make([]byte, 24)) {
				t.Errorf("act is %x, want SIG_IGN and zeros", b[act:act+32])
			}
			if got := le.Uint64(b[set:]); got != 1<<1|1<<14 {
				t.Errorf("set is %#x, want SIGINT and SIGTERM", got)
			}
			if !bytes.Equal(c.branchToIns, tc.loopHead) {
				t.Errorf("the branch goes to %#x, %x; want the wait loop's first instruction %x", c.branchTo, c.branchToIns, tc.loopHead)
			}
		})
	}
}

func TestPauseELFUnknownArch(t *testing.T) {
	if b, err := PauseELF("riscv64"); err == nil || b != nil {
		t.Errorf("riscv64: %d bytes, error %v; want an error", len(b), err)
	}
}

func TestPauseImage(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		img := PauseImage(arch)
		want, _ := PauseELF(arch)
		if img.Name != PauseName || img.Arch != arch || !slices.Equal(img.Entrypoint, []string{"/pause"}) || len(img.Files) != 1 ||
			img.Files[0].Path != "/pause" || img.Files[0].Mode != 0o755 || !bytes.Equal(img.Files[0].Data, want) {
			t.Errorf("PauseImage(%s) = %+v", arch, img)
		}
		if err := WriteArchive(new(bytes.Buffer), img); err != nil {
			t.Errorf("%s: %v", arch, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("PauseImage(riscv64) did not panic")
		}
	}()
	PauseImage("riscv64")
}

// writePause writes the pause program for arch to an executable file.
func writePause(t *testing.T, arch string) string {
	t.Helper()
	b, err := PauseELF(arch)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pause-"+arch)
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// started is a pause process and the outcome of its wait.
type started struct {
	cmd  *exec.Cmd
	done chan error
}

// start starts cmd, skipping the test if skipOnPerm and the start is not
// permitted, and checks it still runs after 300 ms.
func start(t *testing.T, cmd *exec.Cmd, skipOnPerm bool) *started {
	t.Helper()
	if err := cmd.Start(); err != nil {
		if skipOnPerm && errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot start pause in a new pid namespace here: %v", err)
		}
		t.Fatal(err)
	}
	s := &started{cmd, make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
	})
	s.alive(t, "after its start")
	return s
}

// alive checks that pause is still running after 300 ms.
func (s *started) alive(t *testing.T, when string) {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		t.Fatalf("pause ended %s: %v (%v)", when, err, s.cmd.ProcessState)
	case <-time.After(300 * time.Millisecond):
	}
}

// endsWith sends sig and checks that pause exits with status 0 within 2 s.
func (s *started) endsWith(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("after %v: %v, want exit status 0", sig, err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("pause still runs 2 s after %v", sig)
	}
}

// procStatus is the value of field in /proc/pid/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

func procMask(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(procStatus(t, pid, field), 16, 64)
	if err != nil {
		t.Fatalf("%s: %v", field, err)
	}
	return v
}

// checkSignals checks pause's signal state in /proc: SIGCHLD ignored,
// SIGINT and SIGTERM blocked. While pause waits in rt_sigtimedwait, the
// kernel unblocks the signals waited for (keeping the mask to restore
// aside), so the blocked set is read while pause is stopped; SIGCONT then
// interrupts the wait (EINTR), which pause must wait again after.
func (s *started) checkSignals(t *testing.T) {
	t.Helper()
	pid := s.cmd.Process.Pid
	if ign := procMask(t, pid, "SigIgn"); ign&(1<<(sigCHLD-1)) == 0 {
		t.Errorf("SigIgn %#x: SIGCHLD (0x10000) not ignored", ign)
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); !strings.HasPrefix(procStatus(t, pid, "State"), "T"); {
		if time.Now().After(deadline) {
			t.Fatalf("pause not stopped 2 s after SIGSTOP: %s", procStatus(t, pid, "State"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if blk := procMask(t, pid, "SigBlk"); blk&pauseSet != pauseSet {
		t.Errorf("SigBlk %#x: SIGINT and SIGTERM (0x4002) not blocked", blk)
	}
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	s.alive(t, "after SIGSTOP and SIGCONT")
}

func skipUnlessNative(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("pause runs on linux/amd64 and linux/arm64, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
}

func TestPauseRuns(t *testing.T) {
	skipUnlessNative(t)
	path := writePause(t, runtime.GOARCH)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			s := start(t, exec.Command(path), false)
			s.checkSignals(t)
			s.endsWith(t, sig)
		})
	}
}

// TestPausePID1 runs pause as it runs in a pod: the first process of its
// pid namespace, which gets no signal it has not asked for.
func TestPausePID1(t *testing.T) {
	skipUnlessNative(t)
	if os.Geteuid() != 0 {
		t.Skip("running pause as PID 1 of a new pid namespace needs root")
	}
	path := writePause(t, runtime.GOARCH)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(path)
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
			s := start(t, cmd, true)
			nspid := strings.Fields(procStatus(t, cmd.Process.Pid, "NSpid"))
			if len(nspid) != 2 || nspid[1] != "1" {
				t.Fatalf("NSpid %q, want pause as PID 1 of a namespace of its own", nspid)
			}
			s.checkSignals(t)
			s.endsWith(t, sig)
		})
	}
}

// TestPauseARM64 runs the arm64 program under qemu's user emulation,
// when there is one; TestPauseELF checks its structure in any case.
func TestPauseARM64(t *testing.T) {
	if runtime.GOARCH == "arm64" {
		t.Skip("arm64 is native here: TestPauseRuns runs it")
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		if qemu, err = exec.LookPath("qemu-aarch64"); err != nil {
			t.Skip("running the arm64 pause needs qemu-aarch64-static or qemu-aarch64 on PATH (package qemu-user-static); TestPauseELF checked its structure")
		}
	}
	path := writePause(t, "arm64")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			// qemu forwards the signals it gets to the program and
			// exits with its status.
			s := start(t, exec.Command(qemu, path), false)
			s.endsWith(t, sig)
		})
	}
}
