// Package faultproxy is a TCP proxy for fault tests: it forwards every
// connection it accepts to one target, and on command freezes the link
// (Pause: bytes stop flowing both ways, connections stay open, as through
// a frozen process or a black-holed route), cuts it (Cut: every connection
// closed and new ones closed at once, as through a partition that resets),
// or heals it. Tests and the chaos tool put one in front of a node's port
// and give its address to the peers whose link they want to break.
//
// Memory is bounded: each connection holds one buffer per direction; a
// paused copier stops reading once its buffer is full.
package faultproxy

import (
	"net"
	"sync"
)

// Proxy forwards connections from its listener to target.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	state  State
	resume chan struct{} // closed when a pause ends
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// State is what the proxy does to traffic.
type State int

const (
	// Open forwards bytes.
	Open State = iota
	// Paused holds bytes in both directions; connections stay open.
	Paused
	// Cut closes every connection, and each new one at once.
	Cut
)

func (s State) String() string {
	switch s {
	case Paused:
		return "paused"
	case Cut:
		return "cut"
	default:
		return "open"
	}
}

// Start serves ln, forwarding to target, until Close. The proxy owns ln.
func Start(ln net.Listener, target string) *Proxy {
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, resume: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p
}

// Addr is the address peers dial instead of the target's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// State reports what the proxy does now.
func (p *Proxy) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Pause freezes the link: no byte crosses until Heal (or Cut).
func (p *Proxy) Pause() { p.set(Paused) }

// Cut closes every connection and refuses new ones (accepted, then closed)
// until Heal.
func (p *Proxy) Cut() { p.set(Cut) }

// Heal forwards again; held bytes flow on.
func (p *Proxy) Heal() { p.set(Open) }

func (p *Proxy) set(s State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == Paused && s != Paused {
		close(p.resume)
		p.resume = make(chan struct{})
	}
	p.state = s
	if s == Cut {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	if p.state == Paused {
		close(p.resume)
		p.resume = make(chan struct{})
		p.state = Open
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track adds c to the live set unless the proxy is cut or closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.state == Cut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) serve(in net.Conn) {
	defer p.wg.Done()
	if !p.track(in) {
		_ = in.Close()
		return
	}
	defer p.untrack(in)
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(out) {
		_ = out.Close()
		return
	}
	defer p.untrack(out)
	done := make(chan struct{}, 2)
	go func() { p.copy(out, in); done <- struct{}{} }()
	go func() { p.copy(in, out); done <- struct{}{} }()
	<-done // one side ended: end both
	_ = in.Close()
	_ = out.Close()
	<-done
}

// copy forwards src to dst, holding each chunk while the proxy is paused.
func (p *Proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitOpen() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or a closed connection: serve closes both sides
		}
	}
}

// waitOpen blocks while the proxy is paused; it reports false once the
// proxy is cut or closed (the connection is being closed).
func (p *Proxy) waitOpen() bool {
	for {
		p.mu.Lock()
		st, resume, closed := p.state, p.resume, p.closed
		p.mu.Unlock()
		switch {
		case closed || st == Cut:
			return false
		case st == Open:
			return true
		}
		<-resume
	}
}
