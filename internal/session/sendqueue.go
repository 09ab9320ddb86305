package session

import "sync"

// sendQueue holds a connection's frames waiting for its writer, in order,
// at most max of them. It holds memory only while frames wait: a channel
// of that bound would cost every idle connection its whole buffer (24 KiB
// for 1,024 frames), and every garbage collection would scan it.
//
// The writer runs only while frames wait: the push that finds none running
// starts one, and the writer stops when it finds the queue empty. An idle
// connection so has no writer goroutine (one of the six whose stacks were
// most of an idle connection's cost, and every collection scans them).
type sendQueue struct {
	mu     sync.Mutex
	frames []outFrame
	max    int
	// start starts a writer; it is called with mu held, so close orders
	// after it (see close).
	start func()
	// writing: a writer runs. closed: the connection ended; no writer
	// starts again.
	writing, closed bool
	// room gets a token each time the writer takes frames, waking a push
	// that waits for room; idle each time a writer stops (flushed).
	room, idle chan struct{}
}

func newSendQueue(max int, start func()) *sendQueue {
	return &sendQueue{max: max, start: start, room: make(chan struct{}, 1), idle: make(chan struct{}, 1)}
}

// flushed waits until no frame waits and no writer runs, so every frame
// pushed before it has been handed to the stream, or until done closes;
// it reports which. A handler ending its stream calls it first: returning
// ends the stream, and a frame still queued would be lost (the acks of a
// client's last frames before it half-closed).
func (q *sendQueue) flushed(done <-chan struct{}) bool {
	for {
		q.mu.Lock()
		empty := !q.writing && len(q.frames) == 0
		q.mu.Unlock()
		if empty {
			return true
		}
		select {
		case <-q.idle:
		case <-done:
			return false
		}
	}
}

// tryPush appends o unless max frames wait, and starts a writer if none
// runs; it never blocks.
func (q *sendQueue) tryPush(o outFrame) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) >= q.max {
		return false
	}
	q.frames = append(q.frames, o)
	if !q.writing && !q.closed {
		q.writing = true
		q.start()
	}
	return true
}

// push appends o, waiting for room while max frames wait; it returns false
// if done closes first.
func (q *sendQueue) push(o outFrame, done <-chan struct{}) bool {
	for !q.tryPush(o) {
		select {
		case <-q.room:
		case <-done:
			return false
		}
	}
	return true
}

// take moves every waiting frame, in order, into buf (whose contents it
// drops) and returns it. With none waiting it returns buf empty and counts
// the writer as stopped: the writer must return (dropping buf), and the
// next push starts another.
func (q *sendQueue) take(buf []outFrame) []outFrame {
	q.mu.Lock()
	if len(q.frames) == 0 {
		q.writing = false
		q.frames = nil // an idle connection holds no buffer
		q.mu.Unlock()
		signal(q.idle)
		return buf[:0]
	}
	buf, q.frames = q.frames, buf[:0]
	q.mu.Unlock()
	select {
	case q.room <- struct{}{}:
	default:
	}
	return buf
}

// close stops writers from starting. A connection's handler calls it
// before it gives up its count in the server's stream WaitGroup: a writer
// starts (and counts itself) under mu, so it never starts after that count
// is gone, when the server may be waiting for zero.
func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}
