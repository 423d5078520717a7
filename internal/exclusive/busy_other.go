//go:build !linux

package exclusive

import "time"

// machineBusy cannot tell here: Quiet does not wait.
func machineBusy(time.Duration) (float64, bool) { return 0, false }
