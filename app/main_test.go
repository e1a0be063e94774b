package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fixed is 2025-12-15 11:12:53 UTC, which is 14:12:53 in Moscow.
var fixed = time.Date(2025, 12, 15, 11, 12, 53, 0, time.UTC)

func withFixedClock(t *testing.T) {
	t.Helper()
	clock = func() time.Time { return fixed }
	t.Cleanup(func() { clock = time.Now })
}

func decode(t *testing.T, raw string) moscowTime {
	t.Helper()
	var got moscowTime
	decoder := json.NewDecoder(strings.NewReader(raw))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&got); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, raw)
	}
	return got
}

func TestCLIBodyIsMoscowTimeAtPlusThree(t *testing.T) {
	withFixedClock(t)
	got := decode(t, string(body()))
	if got.MoscowTime != "2025-12-15 14:12:53 MSK" {
		t.Errorf("moscow_time = %q", got.MoscowTime)
	}
	if got.Timestamp != fixed.Unix() {
		t.Errorf("timestamp = %d, want %d", got.Timestamp, fixed.Unix())
	}
	parsed, err := time.Parse("2006-01-02 15:04:05 -0700", strings.TrimSuffix(got.MoscowTime, " MSK")+" +0300")
	if err != nil || !parsed.Equal(fixed) {
		t.Errorf("moscow_time read as +03:00 is %v, want %v (err %v)", parsed, fixed, err)
	}
	if _, offset := fixed.In(moscow).Zone(); offset != 3*3600 {
		t.Errorf("offset = %d s, want 10800", offset)
	}
}

func TestServerServesJSON(t *testing.T) {
	withFixedClock(t)
	server := httptest.NewServer(handler())
	defer server.Close()
	response, err := http.Get(server.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", response.StatusCode)
	}
	if ct := response.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var got moscowTime
	if err := json.NewDecoder(response.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Timestamp != fixed.Unix() {
		t.Errorf("timestamp = %d", got.Timestamp)
	}
}

func TestServerRejectsUnknownPathAndMethod(t *testing.T) {
	server := httptest.NewServer(handler())
	defer server.Close()
	for _, c := range []struct {
		method, path string
		want         int
	}{{"GET", "/nope", 404}, {"POST", "/", 405}} {
		request, _ := http.NewRequest(c.method, server.URL+c.path, nil)
		response, err := http.DefaultClient.Do(request)
		if err != nil {
			t.Fatal(err)
		}
		response.Body.Close()
		if response.StatusCode != c.want {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, response.StatusCode, c.want)
		}
	}
}

func TestServeStopsCleanlyOnCancel(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := listener.Addr().String()
	listener.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, addr) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		response, err := http.Get("http://" + addr + "/")
		if err == nil {
			response.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

// parseCGI splits a CGI response into headers and body.
func parseCGI(t *testing.T, raw string) (map[string]string, string) {
	t.Helper()
	head, rest, found := strings.Cut(raw, "\n\n")
	if !found {
		t.Fatalf("no blank line between headers and body:\n%q", raw)
	}
	headers := map[string]string{}
	scanner := bufio.NewScanner(strings.NewReader(head))
	for scanner.Scan() {
		name, value, ok := strings.Cut(scanner.Text(), ":")
		if !ok {
			t.Fatalf("malformed header line %q", scanner.Text())
		}
		headers[strings.ToLower(name)] = strings.TrimSpace(value)
	}
	return headers, rest
}

func wagiEnv(method, path string) func(string) string {
	return func(name string) string {
		return map[string]string{"REQUEST_METHOD": method, "PATH_INFO": path}[name]
	}
}

func TestWagiOK(t *testing.T) {
	withFixedClock(t)
	var out strings.Builder
	if err := runWagi(wagiEnv("GET", "/"), &out); err != nil {
		t.Fatal(err)
	}
	headers, rest := parseCGI(t, out.String())
	if headers["content-type"] != "application/json" {
		t.Errorf("headers = %v", headers)
	}
	if _, has := headers["status"]; has {
		t.Errorf("a 200 response needs no Status header, got %q", headers["status"])
	}
	if got := decode(t, rest); got.MoscowTime != "2025-12-15 14:12:53 MSK" {
		t.Errorf("body = %+v", got)
	}
}

func TestWagiErrors(t *testing.T) {
	for _, c := range []struct{ method, path, status string }{
		{"GET", "/missing", "404 Not Found"},
		{"DELETE", "/", "405 Method Not Allowed"},
	} {
		var out strings.Builder
		if err := runWagi(wagiEnv(c.method, c.path), &out); err != nil {
			t.Fatal(err)
		}
		headers, _ := parseCGI(t, out.String())
		if headers["status"] != c.status {
			t.Errorf("%s %s: Status %q, want %q", c.method, c.path, headers["status"], c.status)
		}
	}
}
