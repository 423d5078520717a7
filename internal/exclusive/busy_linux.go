package exclusive

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// machineBusy is the share of all CPU time, across cores, that was spent
// busy (neither idle nor waiting for I/O) over the next window, from
// /proc/stat.
func machineBusy(window time.Duration) (float64, bool) {
	busy0, total0, ok := cpuTimes()
	if !ok {
		return 0, false
	}
	time.Sleep(window) // the window of the measurement, not a wait for a result
	busy1, total1, ok := cpuTimes()
	if !ok || total1 <= total0 {
		return 0, false
	}
	return float64(busy1-busy0) / float64(total1-total0), true
}

// cpuTimes reads the first line of /proc/stat: the machine's CPU time, in
// ticks, busy and in all.
func cpuTimes() (busy, total uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 6 || string(fields[0]) != "cpu" {
		return 0, 0, false
	}
	// user nice system idle iowait irq softirq steal (guest and
	// guest_nice are inside user and nice already).
	for i, f := range fields[1:min(len(fields), 9)] {
		n, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, true
}
