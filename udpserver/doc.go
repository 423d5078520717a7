// Package udpserver is a discal calculator server. It listens on two UDP
// ports: the calculator port computes add, sub, mul and div and answers each
// request, and the status port tells the proxy how loaded the server is.
//
// Both ports take the binary wire format of package codec and its text form,
// so a person can use netcat:
//
//	printf '6 * 7\n' | nc -u -w1 127.0.0.1 7001      # 42
//	printf 'status\n' | nc -u -w1 127.0.0.1 7101     # server=... host_cpu=...
//
// A fixed set of workers reads the calculator port, so requests are served
// concurrently within a bound. Every operation is written to a buffered
// console log unless Config.Quiet is set. CPU figures come from a background
// sampler (gopsutil), so a status reply never waits on a measurement.
// With Config.Join the server announces itself to proxies, which then route
// work to it without being configured for it (join.go). With
// Config.ControlKey, the commands that change the server (drain, undrain,
// burn) and join acks from any host but loopback are obeyed only sealed
// under the key, and joins are sealed (control.go).
//
//	srv, err := udpserver.New(udpserver.Config{Name: "s1"})
//	if err != nil {
//		return err
//	}
//	go srv.ListenAndServe()
//	defer srv.Shutdown(ctx)
//
// Serve takes sockets the caller opened instead (any net.PacketConn; UDP
// sockets are served in batches), and returns an error if one of them
// fails or is closed under it. Ready says whether the server should get
// work (serving, not draining), for a health endpoint; example_test.go
// shows a whole round trip.
package udpserver
