package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress draws a one-line progress bar on a terminal: count, rate, and
// percentage and ETA when the total is known. On anything else it draws
// nothing.
type progress struct {
	w     io.Writer // nil: quiet
	label string
	total int64

	mu    sync.Mutex
	n     int64
	start time.Time
	drawn time.Time
}

func newProgress(w io.Writer, on bool, label string, total int64) *progress {
	p := &progress{label: label, total: total, start: time.Now()}
	if on {
		p.w = w
	}
	return p
}

// Add counts n more items done.
func (p *progress) Add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(n)
	if p.w != nil && time.Since(p.drawn) >= 100*time.Millisecond {
		p.draw()
	}
}

// SetTotal sets the total once known.
func (p *progress) SetTotal(total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = total
}

// Count returns the items done.
func (p *progress) Count() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Done draws the final state and ends the line.
func (p *progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

func (p *progress) draw() {
	p.drawn = time.Now()
	elapsed := p.drawn.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.n) / elapsed
	}
	line := fmt.Sprintf("%s %d", p.label, p.n)
	if p.total > 0 {
		line += fmt.Sprintf("/%d (%d%%)", p.total, min(100, p.n*100/p.total))
	}
	line += fmt.Sprintf(" %.0f/s", rate)
	if p.total > 0 && rate > 0 && p.n < p.total {
		eta := time.Duration(float64(p.total-p.n) / rate * float64(time.Second))
		line += " ETA " + eta.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s", line)
}
