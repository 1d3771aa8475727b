package shop_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"lastunit/shared/shop"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// commitEater is a TCP proxy in front of Postgres (PgBouncer) that, once armed, lets the
// next COMMIT through, swallows its answer up to ReadyForQuery (so it has certainly
// committed) and then cuts the connection: an answer lost after a commit.
type commitEater struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	eaten  atomic.Int64
	wg     sync.WaitGroup
}

func newCommitEater(t *testing.T, target string) *commitEater {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &commitEater{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *commitEater) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	var eat atomic.Bool
	done := make(chan struct{})
	go func() { // server → client: typed messages
		defer close(done)
		for {
			typ, msg, err := readMsg(server, true)
			if err != nil {
				client.Close()
				return
			}
			if eat.Load() {
				if typ == 'Z' { // the COMMIT is done: the client never hears of it
					p.eaten.Add(1)
					client.Close()
					server.Close()
					return
				}
				continue
			}
			if _, err := client.Write(msg); err != nil {
				server.Close()
				return
			}
		}
	}()
	typed := false // the startup message has no type byte
	for {
		typ, msg, err := readMsg(client, typed)
		typed = true
		if err != nil {
			break
		}
		if typ == 'Q' && bytes.EqualFold(bytes.TrimRight(msg[5:], "\x00; "), []byte("commit")) && p.armed.CompareAndSwap(true, false) {
			eat.Store(true)
		}
		if _, err := server.Write(msg); err != nil {
			break
		}
	}
	server.Close()
	<-done
}

// readMsg reads one protocol message (with its type byte when typed) and returns it whole.
func readMsg(r io.Reader, typed bool) (byte, []byte, error) {
	head := 4
	if typed {
		head = 5
	}
	buf := make([]byte, head)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(buf[head-4:]))
	if n < 4 || n > 1<<26 {
		return 0, nil, errors.New("bad message length")
	}
	msg := make([]byte, head+n-4)
	copy(msg, buf)
	if _, err := io.ReadFull(r, msg[head:]); err != nil {
		return 0, nil, err
	}
	if !typed {
		return 0, msg, nil
	}
	return buf[0], msg, nil
}

// The real store, through a connection that loses the answer of the retake's COMMIT: the
// store reports ErrMaybeWritten, the order is paid in Postgres, and its units stay held.
func TestLatePaymentCommitAnswerLostOnTheWire(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "wire", 3, 3)
	o := lapsedOrder(t, env, "alice", "wire", "wire")
	u, err := url.Parse(env.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	eater := newCommitEater(t, u.Host)
	u.Host = eater.ln.Addr().String()
	pool, err := store.Open(ctx, u.String(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	real := env.Shop.Store
	env.Shop.Store = store.New(pool)
	eater.armed.Store(true)
	err = env.Shop.HandlePaymentEvent(ctx, succeeded(o, "evt_wire"))
	env.Shop.Store = real
	if eater.eaten.Load() != 1 {
		t.Fatalf("the proxy ate %d COMMIT answers, want 1 (err %v)", eater.eaten.Load(), err)
	}
	if !errors.Is(err, shop.ErrMaybeWritten) {
		t.Fatalf("late payment with the COMMIT's answer lost: %v, want ErrMaybeWritten", err)
	}
	if st := orderStatus(t, env, o.ID); st != shop.OrderPaid {
		t.Fatalf("order %s, want paid (the COMMIT went through)", st)
	}
	if l := env.CheckLedger(t, "wire", 3); l.Available != 1 || l.HeldPG != 2 {
		t.Fatalf("after the lost answer: %+v; want the paid order's 2 units held", l)
	}
}
