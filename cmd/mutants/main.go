// Command mutants plants known bugs in a copy of the repository, one at a time, and runs the
// tests of shared/ and lua/ against each: every planted bug must make at least one test fail
// (the mutant is "killed"). A mutant that survives is a class of bug the tests cannot see.
//
//	go run ./cmd/mutants            plant each mutation and test it (make mutants)
//	go run ./cmd/mutants -list      list the mutations
//	go run ./cmd/mutants -run limit only the mutations whose name matches the regexp
//	go run ./cmd/mutants -test TestFaultStorm -pkgs ./shared/shop
//	                                which of them the fault storm alone catches
//
// Each mutation replaces one exact piece of text in one file; if the text is no longer there
// (the code moved on), the run says so and fails, so the list is kept in step with the code.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// mutation is one planted bug: one or more edits, planted together.
type mutation struct {
	name, why string
	edits     []edit
}

// edit replaces old, which must be in file exactly once, with new.
type edit struct {
	file, old, new string
}

var mutations = []mutation{
	{
		name: "pg-count", why: "Postgres no longer enforces the count: a hold its free units cannot cover goes live anyway",
		edits: []edit{{"shared/store/migrations/0044_variants_switch.sql", "    IF total < q THEN\n        RAISE EXCEPTION USING ERRCODE = 'LU001'", "    IF total < q THEN RETURN; END IF;\n    IF false THEN\n        RAISE EXCEPTION USING ERRCODE = 'LU001'"}},
	},
	{
		name: "size-gate", why: "the gate checks a reserve against the product's total, not the size's units (Postgres still counts per size)",
		edits: []edit{{"lua/reserve.lua", "redis.call('HMGET', KEYS[1], vr_field(multi, vid), 'max', 'gen')", "redis.call('HMGET', KEYS[1], 'avail', 'max', 'gen')"}},
	},
	{
		name: "limit-gate", why: "the gate no longer checks max_per_user (Postgres still does)",
		edits: []edit{{"lua/reserve.lua", "if held + qty > max then", "if false then"}},
	},
	{
		name: "limit-gone", why: "max_per_user is checked nowhere: neither the gate nor Postgres",
		edits: []edit{
			{"lua/reserve.lua", "if held + qty > max then", "if false then"},
			{"shared/store/migrations/0031_user_units.sql", "IF n > lim THEN", "IF false THEN"},
			{"shared/store/migrations/0063_insert_hold_no_lock_cycle.sql", "IF v_units > v_lim THEN", "IF false THEN"},
		},
	},
	{
		name: "limit-pg", why: "Postgres no longer checks max_per_user (the gate still does)",
		edits: []edit{
			{"shared/store/migrations/0031_user_units.sql", "IF n > lim THEN", "IF false THEN"},
			{"shared/store/migrations/0063_insert_hold_no_lock_cycle.sql", "IF v_units > v_lim THEN", "IF false THEN"},
		},
	},
	{
		name: "limit-pg-fast", why: "the reserve's fast path (lu_take_hold) no longer checks max_per_user (the trigger, on the plain path, and the gate still do)",
		edits: []edit{{"shared/store/migrations/0063_insert_hold_no_lock_cycle.sql", "IF v_units > v_lim THEN", "IF false THEN"}},
	},
	{
		name: "lock-cycle-fast", why: "the reserve's fast path goes on to the slow path in the same transaction, holding the slots its tries locked (migration 0062's lock cycle)",
		edits: []edit{{"shared/store/migrations/0063_insert_hold_no_lock_cycle.sql",
			"            RAISE EXCEPTION USING ERRCODE = 'LU005', DETAIL = _product,",
			"            INSERT INTO reservations (id, product_id, variant_id, user_id, quantity, status, expires_at, created_at, updated_at, gate_version)\n" +
				"            VALUES (_id, _product, _variant, _user, _qty, 'reserved', _expires, _created, _created, _version);\n" +
				"            RETURN true;\n" +
				"            RAISE EXCEPTION USING ERRCODE = 'LU005', DETAIL = _product,"}},
	},
	{
		name: "lock-cycle-trigger", why: "lu_take_vunits keeps a slot its first try locked and found short while it locks every slot in order",
		edits: []edit{{"shared/store/migrations/0063_insert_hold_no_lock_cycle.sql",
			"ORDER BY slot < pref, slot LIMIT 1 FOR UPDATE SKIP LOCKED);\n        IF FOUND THEN\n            RETURN;\n        END IF;\n        RAISE EXCEPTION USING ERRCODE = 'LU002';\n    EXCEPTION WHEN SQLSTATE 'LU002' THEN\n        NULL;\n    END;",
			"ORDER BY slot < pref, slot LIMIT 1 FOR UPDATE SKIP LOCKED);\n        IF FOUND THEN\n            RETURN;\n        END IF;\n    END;"}},
	},
	{
		name: "sweep-late", why: "the sweep expires holds an hour after their deadline",
		edits: []edit{{"shared/shop/catalog.go", "holds, err := s.Store.ExpireDue(ctx, now, sweepBatch)", "holds, err := s.Store.ExpireDue(ctx, now.Add(-time.Hour), sweepBatch)"}},
	},
	{
		name: "release-twice", why: "a release leaves the hold in the gate, so a second release gives its units back again",
		edits: []edit{{"lua/release.lua", "redis.call('HDEL', KEYS[2], rid)\n", ""}},
	},
	{
		name: "keyed-refusal", why: "after a failover a keyed retry is answered from Redis alone (the first answer is not looked up)",
		edits: []edit{{"shared/shop/reserve.go", `if req.IdemKey != "" && refusal(res.Outcome) {`, `if false && req.IdemKey != "" && refusal(res.Outcome) {`}},
	},
	{
		name: "cancel-no-refund", why: "an admin cancel of a paid order skips the refund",
		edits: []edit{{"shared/shop/fulfill.go", "if err := s.Pay.Refund(ctx, o.ID, *o.PaymentIntentID); err != nil {", "if err := error(nil); err != nil {"}},
	},
	{
		name: "limit-as-stale-gate", why: "a late payment refused by the limit is retried as a stale gate (charged, never settled)",
		edits: []edit{{"shared/store/order.go", "if pe.Code == codeOverLimit {", "if false {"}},
	},
	{
		name: "no-reconcile", why: "the sweep never asks Stripe about orders that ended without a payment",
		edits: []edit{{"shared/shop/catalog.go", "if err := s.reconcilePayments(ctx, &rep); err != nil {", "if err := error(nil); err != nil {"}},
	},
	{
		name: "hold-not-durable", why: "a reserve answers 201 without waiting for Postgres's answer to the hold's insert",
		edits: []edit{{"shared/shop/reserve.go", "ok, err := s.Store.InsertHold(ctx, out.Reservation, res.Gen, res.Version, s.now(), idem)", "_ = idem\n\tok, err := true, error(nil)"}},
	},
}

func main() {
	list := flag.Bool("list", false, "list the mutations and exit")
	run := flag.String("run", "", "plant only the mutations whose name matches this regexp")
	pkgs := flag.String("pkgs", "./shared/... ./lua/...", "the packages to test")
	timeout := flag.Duration("timeout", 20*time.Minute, "the go test timeout of one mutant")
	tests := flag.String("test", "", "go test -run for each mutant (default: every test)")
	flag.Parse()
	if *list {
		for _, m := range mutations {
			var files []string
			for _, e := range m.edits {
				files = append(files, e.file)
			}
			fmt.Printf("%-20s %s (%s)\n", m.name, m.why, strings.Join(files, ", "))
		}
		return
	}
	match, err := regexp.Compile(*run)
	if err != nil {
		fatal("-run: %v", err)
	}
	root, err := gitRoot()
	if err != nil {
		fatal("%v", err)
	}
	failed := false
	for _, m := range mutations {
		if !match.MatchString(m.name) {
			continue
		}
		start := time.Now()
		verdict, detail := plant(root, m, strings.Fields(*pkgs), *tests, *timeout)
		fmt.Printf("%-20s %-9s %5.0fs  %s\n", m.name, verdict, time.Since(start).Seconds(), detail)
		if verdict != "killed" {
			failed = true
		}
	}
	if failed {
		fmt.Println("some mutants survived or could not be planted: the tests miss a class of bug, or the list is out of date")
		os.Exit(1)
	}
}

// plant copies the repository, applies m and runs the tests: "killed" when a test failed,
// "survived" when they all passed, "stale" when the text to replace is gone, "broken" when
// the mutant does not build.
func plant(root string, m mutation, pkgs []string, tests string, timeout time.Duration) (verdict, detail string) {
	dir, err := os.MkdirTemp("", "lastunit-mutant-")
	if err != nil {
		fatal("temp dir: %v", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := copyTree(root, dir); err != nil {
		fatal("copy the repository: %v", err)
	}
	for _, e := range m.edits {
		path := filepath.Join(dir, e.file)
		src, err := os.ReadFile(path)
		if err != nil {
			return "stale", err.Error()
		}
		if n := strings.Count(string(src), e.old); n != 1 {
			return "stale", fmt.Sprintf("%s has the text to replace %d times, want once", e.file, n)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(src), e.old, e.new, 1)), 0o644); err != nil {
			fatal("write %s: %v", path, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	args := []string{"test", "-count=1", "-failfast", "-timeout", timeout.String()}
	if tests != "" {
		args = append(args, "-run", tests)
	}
	args = append(args, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		return "survived", m.why
	}
	if strings.Contains(string(out), "[build failed]") || strings.Contains(string(out), "[setup failed]") {
		return "broken", firstLine(string(out))
	}
	return "killed", why(string(out))
}

var testFailure = regexp.MustCompile(`\S+_test\.go:\d+: .*|--- FAIL: \S+`)

// why returns the first test failure message in out, cut to one line of 160 characters.
func why(out string) string {
	m := testFailure.FindString(out)
	if len(m) > 160 {
		m = m[:160] + "…"
	}
	return m
}

// firstLine returns the first non-empty line of out.
func firstLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if t := strings.TrimSpace(l); t != "" {
			return t
		}
	}
	return ""
}

func gitRoot() (string, error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("not in a git checkout: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// copyTree copies the files git tracks or would track (not the ignored ones) from root to dir.
func copyTree(root, dir string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		src := filepath.Join(root, name)
		info, err := os.Lstat(src)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree
			}
			return err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFile(src, dst, info.Mode()); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutants: "+format+"\n", args...)
	os.Exit(2)
}
