package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// askText sends one text datagram to addr and returns the answer, waiting
// at most 200 ms.
func askText(addr, text string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte(text)); err != nil {
		return "", err
	}
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// textAnswers reports whether addr answers "1 + 1" within 200 ms.
func textAnswers(addr string) bool {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("1 + 1\n")); err != nil {
		return false
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return err == nil && string(buf[:n]) == "2\n"
}

// waitForFleet waits until the proxy whose metrics are at addr has live
// servers in rotation and down entries out of it, as its
// discal_proxy_server_up gauge says: the text stats are cut at one
// datagram, the metrics are not.
func waitForFleet(ctx context.Context, addr string, live, down int) error {
	deadline := time.Now().Add(10*time.Second + time.Duration(live+down)*20*time.Millisecond)
	client := &http.Client{Timeout: 2 * time.Second}
	var up, out int
	var err error
	for time.Now().Before(deadline) {
		if up, out, err = serversUp(client, addr); err == nil && up == live && out == down {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("the proxy's metrics did not show %d servers up and %d down in time: %w", live, down, err)
	}
	return fmt.Errorf("the proxy did not see %d servers up and %d down in time (last: %d up, %d down)", live, down, up, out)
}

// serversUp counts the servers a proxy's metrics show in and out of
// rotation.
func serversUp(client *http.Client, addr string) (up, down int, err error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "discal_proxy_server_up{") {
			continue
		}
		if strings.HasSuffix(line, " 1") {
			up++
		} else {
			down++
		}
	}
	return up, down, sc.Err()
}
