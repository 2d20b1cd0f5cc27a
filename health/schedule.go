package health

import (
	"container/heap"
	"sync"
	"time"
)

// maxEarly bounds how much earlier than due a check may start. Checks
// falling due within that much of each other start together, from one
// wake-up of one goroutine: a thousand checks a second then cost ten
// thread wake-ups instead of a thousand, and on a virtual machine each
// wake-up costs more than the check itself. A check starts at most a
// tenth of its interval early, so its period does not drift and a failing
// backend is never noticed later than interval x fall.
const maxEarly = 100 * time.Millisecond

// early is how much earlier than due a check with this interval may start.
func early(interval time.Duration) time.Duration { return min(maxEarly, interval/10) }

// scheduler starts the checks of every monitor in the process from one
// goroutine, in batches.
type scheduler struct {
	mu    sync.Mutex
	queue dueQueue
	kick  chan struct{} // an entry now falls due earlier than the goroutine sleeps
	runs  bool
}

var processScheduler = &scheduler{kick: make(chan struct{}, 1)}

// add queues tg for its first check at due.
func (s *scheduler) add(tg *target, due time.Time) {
	s.mu.Lock()
	tg.due = due
	heap.Push(&s.queue, tg)
	first := s.queue[0] == tg
	if !s.runs {
		s.runs = true
		go s.loop()
	}
	s.mu.Unlock()
	if first {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// remove takes tg off the queue; a check in flight finishes on its own.
func (s *scheduler) remove(tg *target) {
	s.mu.Lock()
	if tg.index >= 0 {
		heap.Remove(&s.queue, tg.index)
	}
	s.mu.Unlock()
}

// loop sleeps until the earliest check falls due, then starts it and
// every other check that may start early by then. It ends when the queue
// is empty; add starts it again.
func (s *scheduler) loop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch []*target
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.runs = false
			s.mu.Unlock()
			return
		}
		wake := s.queue[0].due
		s.mu.Unlock()
		if d := time.Until(wake); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-s.kick:
				if !timer.Stop() {
					<-timer.C
				}
				continue
			}
		}
		now := time.Now()
		s.mu.Lock()
		for len(s.queue) > 0 {
			tg := s.queue[0]
			interval := tg.m.cfg.Interval
			if tg.due.After(now.Add(early(interval))) {
				break
			}
			batch = append(batch, tg)
			// The next check is one period after this one was due, so
			// batching moves checks without stretching the period; after
			// a stall, the schedule restarts from now instead of
			// catching up in a burst.
			next := tg.due.Add(interval)
			if next.Before(now) {
				next = now.Add(interval)
			}
			tg.due = next
			heap.Fix(&s.queue, 0)
		}
		s.mu.Unlock()
		for _, tg := range batch {
			tg.m.launch(tg)
		}
		clear(batch)
		batch = batch[:0]
	}
}

// dueQueue is a min-heap of targets by due time.
type dueQueue []*target

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q dueQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *dueQueue) Push(x any) {
	tg := x.(*target)
	tg.index = len(*q)
	*q = append(*q, tg)
}
func (q *dueQueue) Pop() any {
	old := *q
	tg := old[len(old)-1]
	old[len(old)-1] = nil
	tg.index = -1
	*q = old[:len(old)-1]
	return tg
}
