package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// cpuSampler reads the CPU time of a set of server processes every 50 ms
// while a measurement runs, so that the servers' CPU can be taken over
// exactly the window the load generator measured (its summary says when
// that began and how long it lasted; preparation before it is not
// counted).
type cpuSampler struct {
	pids    []int
	mu      sync.Mutex
	samples []cpuSample
	stop    chan struct{}
	done    chan struct{}
}

type cpuSample struct {
	at  time.Time
	cpu float64 // seconds, all pids together
}

func startCPUSampler(pids []int) *cpuSampler {
	s := &cpuSampler{pids: pids, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample() // before the caller starts anything
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.sample()
			case <-s.stop:
				s.sample()
				return
			}
		}
	}()
	return s
}

func (s *cpuSampler) sample() {
	var sum float64
	for _, pid := range s.pids {
		v, err := procCPU(pid)
		if err != nil {
			return // a server gone: no sample rather than a wrong one
		}
		sum += v
	}
	s.mu.Lock()
	s.samples = append(s.samples, cpuSample{at: time.Now(), cpu: sum})
	s.mu.Unlock()
}

// finish stops the sampling.
func (s *cpuSampler) finish() {
	close(s.stop)
	<-s.done
}

// between is the servers' CPU seconds from from to to, interpolated
// linearly between the samples around each end; ok is false when the
// samples do not cover the window.
func (s *cpuSampler) between(from, to time.Time) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, okA := interpolate(s.samples, from)
	b, okB := interpolate(s.samples, to)
	return b - a, okA && okB && !to.Before(from)
}

func interpolate(ss []cpuSample, t time.Time) (float64, bool) {
	for i := 1; i < len(ss); i++ {
		lo, hi := ss[i-1], ss[i]
		if t.Before(lo.at) || t.After(hi.at) {
			continue
		}
		span := hi.at.Sub(lo.at)
		if span <= 0 {
			return hi.cpu, true
		}
		f := float64(t.Sub(lo.at)) / float64(span)
		return lo.cpu + f*(hi.cpu-lo.cpu), true
	}
	return 0, false
}

// procCPU is a process's user and system CPU seconds so far, from
// /proc/<pid>/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after it start past the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad CPU times", pid)
	}
	return float64(ut+st) / clockTicks, nil
}
