package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serving runs a server on a real listener, as Serve does in production,
// with short network timeouts.
func serving(t *testing.T) (addr, adminToken string) {
	t.Helper()
	cfg := Config{DataDir: t.TempDir(), InitialQueues: testQueues(),
		ReadHeaderTimeout: 200 * time.Millisecond, BodyTimeout: 300 * time.Millisecond,
		WriteTimeout: 5 * time.Second, IdleTimeout: 300 * time.Millisecond}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		s.Close()
	})
	return ln.Addr().String(), s.AdminToken()
}

// closedByServer waits (at most 20 s, far past every timeout) for the
// server to close the connection, reading and dropping whatever it sends.
func closedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open")
	}
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func readResponse(t *testing.T, c net.Conn, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// Connections are not held open by clients that send nothing, send half a
// body, trickle a body, or keep a connection idle after an answer.
func TestSlowAndIdleClientsAreCutOff(t *testing.T) {
	addr, admin := serving(t)
	t.Run("idle keep-alive connection", func(t *testing.T) {
		c, br := dial(t, addr)
		fmt.Fprintf(c, "GET /v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := readResponse(t, c, br); resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("healthz: %d (close %v), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
		closedByServer(t, c)
	})
	t.Run("connection that sends nothing", func(t *testing.T) {
		c, _ := dial(t, addr)
		closedByServer(t, c)
	})
	t.Run("half-sent body without a token", func(t *testing.T) {
		c, br := dial(t, addr)
		fmt.Fprintf(c, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/yaml\r\nContent-Length: 1000\r\n\r\nname: half")
		if resp, _ := readResponse(t, c, br); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
		closedByServer(t, c)
	})
	t.Run("body trickled with a token", func(t *testing.T) {
		c, br := dial(t, addr)
		body := `{"name":"slow"}` + strings.Repeat(" ", 200)
		fmt.Fprintf(c, "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", admin, len(body))
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for i := range len(body) {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return
				}
			}
		}()
		resp, got := readResponse(t, c, br)
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(got, `"timeout"`) {
			t.Fatalf("status %d %s, want 408 timeout", resp.StatusCode, got)
		}
	})
	t.Run("a body sent at once is read", func(t *testing.T) {
		c, br := dial(t, addr)
		body := `{"name":"quick"}`
		fmt.Fprintf(c, "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", admin, len(body), body)
		if resp, got := readResponse(t, c, br); resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d %s, want 201", resp.StatusCode, got)
		}
		// The deadlines are each request's: the connection serves another.
		fmt.Fprintf(c, "GET /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", admin)
		if resp, got := readResponse(t, c, br); resp.StatusCode != http.StatusOK || !strings.Contains(got, "quick") {
			t.Fatalf("second request: %d %s", resp.StatusCode, got)
		}
	})
}
