package services_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServicesListenOnLoopbackOnly runs `make services` with spare ports and a run
// directory of its own (so it starts a fresh SQS emulator and stripe-mock, and leaves the
// shared ones alone), then reads every TCP socket the two processes listen on from
// /proc/<pid>/fd and /proc/net/tcp{,6}: each must be bound to a loopback address, and the
// configured ports must be among them. The test then stops the two processes it started, by
// the pids in its run directory; never `make stop-services`, which also stops the machine's
// shared PgBouncer.
func TestServicesListenOnLoopbackOnly(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()
	sqsPort, stripePort := freePort(t, 1), freePort(t, 2) // stripe-mock's HTTPS is its port + 1
	vars := []string{"RUN=" + run, fmt.Sprint("SQS_PORT=", sqsPort), fmt.Sprint("STRIPE_MOCK_PORT=", stripePort)}
	make := func(target string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", append([]string{"-s", "-C", root, target}, vars...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	t.Cleanup(func() {
		for _, name := range []string{"fauxqs", "stripe-mock"} {
			b, err := os.ReadFile(filepath.Join(run, name+".pid"))
			if err != nil {
				continue
			}
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill() //nolint:errcheck
					p.Wait() //nolint:errcheck
				}
			}
		}
	})
	make("services")

	for name, want := range map[string][]int{"fauxqs": {sqsPort}, "stripe-mock": {stripePort, stripePort + 1}} {
		b, err := os.ReadFile(filepath.Join(run, name+".pid"))
		if err != nil {
			t.Fatalf("%s was not started by make services: %v", name, err)
		}
		pid := strings.TrimSpace(string(b))
		socks := listening(t, pid, 0)
		if len(socks) == 0 {
			t.Fatalf("%s (pid %s) listens on nothing", name, pid)
		}
		ports := map[int]bool{}
		for _, s := range socks {
			t.Logf("%s listens on %s", name, s)
			if !s.IP.IsLoopback() {
				t.Errorf("%s (pid %s) listens on %s: not loopback", name, pid, s)
			}
			ports[s.Port] = true
		}
		for _, p := range want {
			if !ports[p] {
				t.Errorf("%s does not listen on port %d (it listens on %v)", name, p, socks)
			}
		}
	}
}

// TestSharedServicesListenOnLoopbackOnly: Postgres, PgBouncer and Redis, which `make services`
// starts when they are not running (and every test uses), listen on loopback only: every
// listening socket on their ports, whoever owns it, from /proc/net/tcp{,6}.
func TestSharedServicesListenOnLoopbackOnly(t *testing.T) {
	for name, port := range map[string]int{"postgres": 5432, "pgbouncer": 6432, "redis": 6379} {
		socks := listening(t, "", port)
		if len(socks) == 0 {
			t.Errorf("nothing listens on %s's port %d: run make services", name, port)
		}
		for _, s := range socks {
			if !s.IP.IsLoopback() {
				t.Errorf("%s listens on %s: not loopback", name, s)
			}
		}
	}
}

// freePort returns a port p such that p .. p+n-1 are all free now.
func freePort(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for i := 1; i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprint(":", p+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free ports")
	return 0
}

// listening returns the addresses of the TCP sockets process pid listens on ("" for any
// process), on port (0 for any port).
func listening(t *testing.T, pid string, port int) []*net.TCPAddr {
	t.Helper()
	var inodes map[string]bool
	if pid != "" {
		inodes = map[string]bool{}
		fds, err := os.ReadDir("/proc/" + pid + "/fd")
		if err != nil {
			t.Fatalf("read the sockets of pid %s: %v", pid, err)
		}
		for _, fd := range fds {
			if l, err := os.Readlink("/proc/" + pid + "/fd/" + fd.Name()); err == nil {
				if ino, ok := strings.CutPrefix(l, "socket:["); ok {
					inodes[strings.TrimSuffix(ino, "]")] = true
				}
			}
		}
	}
	var out []*net.TCPAddr
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" || (inodes != nil && !inodes[fs[9]]) { // 0A: LISTEN
				continue
			}
			if a := parseProcAddr(t, fs[1]); port == 0 || a.Port == port {
				out = append(out, a)
			}
		}
		_ = f.Close() // read only
	}
	return out
}

// parseProcAddr reads /proc/net/tcp's "0100007F:2474": the address as 32-bit words in host
// (little-endian) order, the port in hex.
func parseProcAddr(t *testing.T, s string) *net.TCPAddr {
	t.Helper()
	hexIP, hexPort, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexIP)
	port, err2 := strconv.ParseUint(hexPort, 16, 16)
	if err != nil || err2 != nil || (len(raw) != 4 && len(raw) != 16) {
		t.Fatalf("unreadable address %q", s)
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return &net.TCPAddr{IP: ip, Port: int(port)}
}
