package session

import "sync"

// sendQueue holds a connection's frames waiting for its writer, in order,
// at most max of them. It holds memory only while frames wait: a channel
// of that bound would cost every idle connection its whole buffer (24 KiB
// for 1,024 frames), and every garbage collection would scan it.
type sendQueue struct {
	mu     sync.Mutex
	frames []outFrame
	max    int
	// ready holds a token while frames wait; room gets one each time the
	// writer takes them, waking a push that waits for room.
	ready, room chan struct{}
}

func newSendQueue(max int) *sendQueue {
	return &sendQueue{max: max, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// tryPush appends o unless max frames wait; it never blocks.
func (q *sendQueue) tryPush(o outFrame) bool {
	q.mu.Lock()
	if len(q.frames) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.frames = append(q.frames, o)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
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
// drops) and returns it. The writer calls it after a token on ready.
func (q *sendQueue) take(buf []outFrame) []outFrame {
	q.mu.Lock()
	buf, q.frames = q.frames, buf[:0]
	q.mu.Unlock()
	select {
	case q.room <- struct{}{}:
	default:
	}
	return buf
}
