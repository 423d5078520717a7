//go:build !unix

package flood

import "time"

// cpuTime is unknown here: the report shows no CPU figure.
func cpuTime() time.Duration { return 0 }
